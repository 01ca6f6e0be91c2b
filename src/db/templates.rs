//! The `templates` and `template_versions` tables.

use sqlx::Row;

use super::{flag, parse_json, to_json, Database};
use std::collections::BTreeMap;

use crate::model::parameter::Parameter;
use crate::model::preset::VersionFacts;
use crate::model::resource::PreviewResource;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Template {
    pub id: String,
    pub name: String,
    pub description: String,
    pub active_version_id: Option<String>,
    pub created_by: String,
    pub created_at: i64,
    pub updated_at: i64,
    /// Shown instead of the name when set.
    pub display_name: String,
    /// A URL or `/icon/NAME` path; empty for the generic icon.
    pub icon: String,
}

/// A template version without its archive (which is only loaded to run or pull it).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct TemplateVersion {
    pub id: String,
    pub template_id: String,
    pub name: String,
    pub message: String,
    pub created_by: String,
    pub created_at: i64,
    pub job_id: Option<String>,
    pub parameters: Vec<Parameter>,
    /// The import's resource preview.
    pub resources: Vec<PreviewResource>,
    /// `terraform graph` of the configuration, computed once at import.
    pub graph: Option<String>,
    pub has_external_agent: bool,
    /// Presets, tags and external auth the import found.
    pub facts: VersionFacts,
    /// Terraform variables the push set (`--variable`, `--variables-file`).
    pub variables: BTreeMap<String, String>,
}

/// What an import found out about its version.
pub struct VersionImport<'a> {
    pub parameters: &'a [Parameter],
    pub resources: &'a [PreviewResource],
    pub graph: Option<&'a str>,
    pub has_external_agent: bool,
    pub facts: &'a VersionFacts,
}

const T_COLUMNS: &str =
    "id, name, description, active_version_id, created_by, created_at, updated_at, display_name, icon";
const V_COLUMNS: &str = "id, template_id, name, message, created_by, created_at, job_id, parameters, resources, graph, has_external_agent, presets, tags, external_auth, variables";

fn template_from_row(row: &sqlx::any::AnyRow) -> Result<Template, sqlx::Error> {
    Ok(Template {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        active_version_id: row.try_get("active_version_id")?,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        display_name: row.try_get("display_name")?,
        icon: row.try_get("icon")?,
    })
}

fn version_from_row(row: &sqlx::any::AnyRow) -> Result<TemplateVersion, sqlx::Error> {
    let id: String = row.try_get("id")?;
    Ok(TemplateVersion {
        parameters: parse_json(
            format_args!("the parameters of template version {id}"),
            &row.try_get::<String, _>("parameters")?,
        )?,
        resources: parse_json(
            format_args!("the resource preview of template version {id}"),
            &row.try_get::<String, _>("resources")?,
        )?,
        facts: VersionFacts {
            presets: parse_json(
                format_args!("the presets of template version {id}"),
                &row.try_get::<String, _>("presets")?,
            )?,
            tags: parse_json(
                format_args!("the tags of template version {id}"),
                &row.try_get::<String, _>("tags")?,
            )?,
            external_auth: parse_json(
                format_args!("the external auth of template version {id}"),
                &row.try_get::<String, _>("external_auth")?,
            )?,
        },
        variables: parse_json(
            format_args!("the variables of template version {id}"),
            &row.try_get::<String, _>("variables")?,
        )?,
        id,
        template_id: row.try_get("template_id")?,
        name: row.try_get("name")?,
        message: row.try_get("message")?,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
        job_id: row.try_get("job_id")?,
        graph: row.try_get("graph")?,
        has_external_agent: flag(row.try_get("has_external_agent")?),
    })
}

impl Database {
    pub async fn insert_template(&self, t: &Template) -> Result<(), sqlx::Error> {
        sqlx::query("INSERT INTO templates (id, name, description, active_version_id, created_by, created_at, updated_at, display_name, icon) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
            .bind(&t.id)
            .bind(&t.name)
            .bind(&t.description)
            .bind(&t.active_version_id)
            .bind(&t.created_by)
            .bind(t.created_at)
            .bind(t.updated_at)
            .bind(&t.display_name)
            .bind(&t.icon)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Sets what people see of a template: its display name, description and icon.
    pub async fn update_template_settings(
        &self,
        id: &str,
        display_name: &str,
        description: &str,
        icon: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE templates SET display_name = $1, description = $2, icon = $3, updated_at = $4 WHERE id = $5")
            .bind(display_name)
            .bind(description)
            .bind(icon)
            .bind(crate::model::now_ms())
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn get_template_by_name(&self, name: &str) -> Result<Option<Template>, sqlx::Error> {
        let sql = format!("SELECT {T_COLUMNS} FROM templates WHERE name = $1");
        let row = sqlx::query(&sql)
            .bind(name)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(template_from_row).transpose()
    }

    pub async fn get_template(&self, id: &str) -> Result<Option<Template>, sqlx::Error> {
        let sql = format!("SELECT {T_COLUMNS} FROM templates WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(template_from_row).transpose()
    }

    pub async fn list_templates(&self) -> Result<Vec<Template>, sqlx::Error> {
        let sql = format!("SELECT {T_COLUMNS} FROM templates ORDER BY name");
        let rows = sqlx::query(&sql).fetch_all(self.pool()).await?;
        rows.iter().map(template_from_row).collect()
    }

    pub async fn set_active_version<'e, E>(
        &self,
        exec: E,
        template_id: &str,
        version_id: &str,
    ) -> Result<(), sqlx::Error>
    where
        E: sqlx::Executor<'e, Database = sqlx::Any>,
    {
        sqlx::query("UPDATE templates SET active_version_id = $1, updated_at = $2 WHERE id = $3")
            .bind(version_id)
            .bind(crate::model::now_ms())
            .bind(template_id)
            .execute(exec)
            .await?;
        Ok(())
    }

    /// Makes an imported version active unless a version pushed after it already is: the
    /// newest push wins, whichever import finishes last. False when it stayed inactive.
    pub async fn activate_if_newest<'e, E>(
        &self,
        exec: E,
        template_id: &str,
        version_id: &str,
    ) -> Result<bool, sqlx::Error>
    where
        E: sqlx::Executor<'e, Database = sqlx::Any>,
    {
        let done = sqlx::query(
            "UPDATE templates SET active_version_id = $1, updated_at = $2 WHERE id = $3 AND NOT EXISTS (
                SELECT 1 FROM template_versions cur, template_versions v
                WHERE cur.id = templates.active_version_id AND v.id = $1 AND cur.push_seq > v.push_seq)",
        )
        .bind(version_id)
        .bind(crate::model::now_ms())
        .bind(template_id)
        .execute(exec)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Deletes a template and its versions only while no live workspace uses it, in one
    /// transaction. Returns the number of workspaces in the way (0 = deleted).
    pub async fn delete_template_if_unused(&self, template_id: &str) -> Result<i64, sqlx::Error> {
        let mut tx = self.pool().begin().await?;
        let in_use: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM workspaces WHERE template_id = $1 AND deleted = 0",
        )
        .bind(template_id)
        .fetch_one(&mut *tx)
        .await?;
        if in_use > 0 {
            return Ok(in_use);
        }
        let has_history: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM workspaces WHERE template_id = $1")
                .bind(template_id)
                .fetch_one(&mut *tx)
                .await?;
        if has_history > 0 {
            // Deleted workspaces still reference the versions through their builds: keep the
            // rows for history and only take the name back by renaming.
            sqlx::query("UPDATE templates SET name = $1 WHERE id = $2")
                .bind(format!("deleted-{template_id}"))
                .bind(template_id)
                .execute(&mut *tx)
                .await?;
        } else {
            sqlx::query("UPDATE templates SET active_version_id = NULL WHERE id = $1")
                .bind(template_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM template_versions WHERE template_id = $1")
                .bind(template_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM templates WHERE id = $1")
                .bind(template_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(0)
    }

    /// Inserts a version numbered after the template's others (its place in push order).
    /// Fails on a UNIQUE violation when the name is taken or a concurrent push took the
    /// same number: the caller retries.
    pub async fn insert_template_version<'e, E>(
        &self,
        exec: E,
        v: &TemplateVersion,
        archive: &[u8],
    ) -> Result<(), sqlx::Error>
    where
        E: sqlx::Executor<'e, Database = sqlx::Any>,
    {
        sqlx::query("INSERT INTO template_versions (id, template_id, name, message, archive, created_by, created_at, job_id, parameters, resources, graph, has_external_agent, variables, push_seq) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, (SELECT COALESCE(MAX(push_seq), 0) + 1 FROM template_versions WHERE template_id = $2))")
            .bind(&v.id)
            .bind(&v.template_id)
            .bind(&v.name)
            .bind(&v.message)
            .bind(archive)
            .bind(&v.created_by)
            .bind(v.created_at)
            .bind(&v.job_id)
            .bind(to_json(&v.parameters)?)
            .bind(to_json(&v.resources)?)
            .bind(&v.graph)
            .bind(v.has_external_agent as i64)
            .bind(to_json(&v.variables)?)
            .execute(exec)
            .await?;
        Ok(())
    }

    pub async fn get_template_version(
        &self,
        id: &str,
    ) -> Result<Option<TemplateVersion>, sqlx::Error> {
        let sql = format!("SELECT {V_COLUMNS} FROM template_versions WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(version_from_row).transpose()
    }

    pub async fn get_template_version_by_name(
        &self,
        template_id: &str,
        name: &str,
    ) -> Result<Option<TemplateVersion>, sqlx::Error> {
        let sql = format!(
            "SELECT {V_COLUMNS} FROM template_versions WHERE template_id = $1 AND name = $2"
        );
        let row = sqlx::query(&sql)
            .bind(template_id)
            .bind(name)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(version_from_row).transpose()
    }

    pub async fn list_template_versions(
        &self,
        template_id: &str,
    ) -> Result<Vec<TemplateVersion>, sqlx::Error> {
        let sql = format!(
            "SELECT {V_COLUMNS} FROM template_versions WHERE template_id = $1 ORDER BY push_seq"
        );
        let rows = sqlx::query(&sql)
            .bind(template_id)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(version_from_row).collect()
    }

    pub async fn get_template_archive(
        &self,
        version_id: &str,
    ) -> Result<Option<Vec<u8>>, sqlx::Error> {
        sqlx::query_scalar("SELECT archive FROM template_versions WHERE id = $1")
            .bind(version_id)
            .fetch_optional(self.pool())
            .await
    }

    /// What a version's import found.
    pub async fn set_template_version_import<'e, E>(
        &self,
        exec: E,
        version_id: &str,
        found: &VersionImport<'_>,
    ) -> Result<(), sqlx::Error>
    where
        E: sqlx::Executor<'e, Database = sqlx::Any>,
    {
        sqlx::query("UPDATE template_versions SET parameters = $1, resources = $2, graph = $3, has_external_agent = $4, presets = $6, tags = $7, external_auth = $8 WHERE id = $5")
            .bind(to_json(&found.parameters)?)
            .bind(to_json(&found.resources)?)
            .bind(found.graph)
            .bind(found.has_external_agent as i64)
            .bind(version_id)
            .bind(to_json(&found.facts.presets)?)
            .bind(to_json(&found.facts.tags)?)
            .bind(to_json(&found.facts.external_auth)?)
            .execute(exec)
            .await?;
        Ok(())
    }
}
