//! One private directory per job: the template's files, rendered, plus the state the
//! previous build left.
//!
//! Work dirs are named `<job id>-<random>` under `<data dir>/work` so that, after the
//! process running a job dies (kill -9, power loss), the next start can find the job's
//! dir and recover the state terraform had written there before wiping it: terraform
//! writes `terraform.tfstate` progressively during apply, and resources it created are
//! only known from that file.

use std::path::{Path, PathBuf};

use crate::model::archive::{self, ArchiveError};

/// The state file terraform reads and writes with the local backend.
pub const STATE_FILE: &str = "terraform.tfstate";

/// Where terraform writes state it failed to persist to its backend.
const ERRORED_STATE_FILE: &str = "errored.tfstate";

/// Written by terraform before it first overwrites the state in a run.
const BACKUP_STATE_FILE: &str = "terraform.tfstate.backup";

#[derive(Debug, thiserror::Error)]
pub enum WorkdirError {
    #[error("creating a work dir in {root}: {source}; check that the data dir is writable and has free space")]
    Create {
        root: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the template version's archive cannot be used: {0}")]
    Archive(#[from] ArchiveError),
    #[error("{file}{}: {message}; fix the template and push a new version", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Render {
        file: String,
        line: Option<usize>,
        message: String,
    },
    #[error("job id {0:?} cannot name a work dir (empty, or contains `/`, NUL or a leading `.`)")]
    JobId(String),
    #[error("the build context must be a JSON object (workspace, owner, template, transition, parameters), got {0}")]
    Context(String),
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl WorkdirError {
    fn io(action: &'static str, path: impl AsRef<Path>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.as_ref().display().to_string();
        move |source| WorkdirError::Io {
            action,
            path,
            source,
        }
    }
}

/// A job's work dir; removed when dropped (unless the process dies first, which is
/// what `find_leftover` is for).
#[derive(Debug)]
pub struct Workdir {
    dir: tempfile::TempDir,
}

impl Workdir {
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Stops the dir from being removed on drop (for debugging a failed build).
    pub fn keep(self) -> PathBuf {
        self.dir.keep()
    }
}

/// Creates `<work_root>/<job_id>-XXXXXX` (mode 0700: it will hold state and secrets),
/// extracts `archive`, renders each `*.tf.tera` into `*.tf` with `ctx` (keys: workspace,
/// owner, template, transition, parameters), and writes `prior_state` as
/// `terraform.tfstate`.
pub fn prepare(
    work_root: &Path,
    job_id: &str,
    archive: &[u8],
    ctx: &serde_json::Value,
    prior_state: Option<&[u8]>,
) -> Result<Workdir, WorkdirError> {
    use std::os::unix::fs::PermissionsExt;

    // The id becomes part of a path; it must not be able to leave work_root.
    if job_id.is_empty() || job_id.contains(['/', '\0']) || job_id.starts_with('.') {
        return Err(WorkdirError::JobId(job_id.to_string()));
    }
    std::fs::create_dir_all(work_root).map_err(|source| WorkdirError::Create {
        root: work_root.display().to_string(),
        source,
    })?;
    let dir = tempfile::Builder::new()
        .prefix(&format!("{job_id}-"))
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir_in(work_root)
        .map_err(|source| WorkdirError::Create {
            root: work_root.display().to_string(),
            source,
        })?;
    archive::extract(archive, dir.path())?;
    render_templates(dir.path(), ctx)?;
    if let Some(state) = prior_state {
        let path = dir.path().join(STATE_FILE);
        std::fs::write(&path, state).map_err(WorkdirError::io("writing", &path))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(WorkdirError::io("restricting", &path))?;
    }
    Ok(Workdir { dir })
}

/// Renders every `*.tf.tera` under `dir` into the same name without `.tera`, and
/// removes the template so terraform never sees it.
pub fn render_templates(dir: &Path, ctx: &serde_json::Value) -> Result<(), WorkdirError> {
    if !ctx.is_object() {
        return Err(WorkdirError::Context(ctx.to_string()));
    }
    let context =
        tera::Context::from_value(ctx.clone()).map_err(|e| WorkdirError::Context(e.to_string()))?;
    let mut templates = Vec::new();
    find_templates(dir, &mut templates)?;
    templates.sort();
    for path in templates {
        let rel = path
            .strip_prefix(dir)
            .unwrap_or(&path)
            .display()
            .to_string();
        let source = std::fs::read_to_string(&path).map_err(WorkdirError::io("reading", &path))?;
        let rendered = render_one(&rel, &source, &context)?;
        let out = path.with_extension(""); // main.tf.tera -> main.tf
        if out.exists() {
            return Err(WorkdirError::Render {
                file: rel,
                line: None,
                message: format!(
                    "both {} and its template exist; keep only one of them",
                    out.file_name().unwrap_or_default().to_string_lossy()
                ),
            });
        }
        std::fs::write(&out, rendered).map_err(WorkdirError::io("writing", &out))?;
        std::fs::remove_file(&path).map_err(WorkdirError::io("removing", &path))?;
    }
    Ok(())
}

fn find_templates(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), WorkdirError> {
    for entry in std::fs::read_dir(dir).map_err(WorkdirError::io("reading", dir))? {
        let entry = entry.map_err(WorkdirError::io("reading", dir))?;
        let path = entry.path();
        // `file_type` does not follow links: a link to a dir is not descended and a link
        // to a file is not rendered (archives were checked, but the walk need not rely on
        // it).
        let ft = entry
            .file_type()
            .map_err(WorkdirError::io("reading", &path))?;
        if ft.is_dir() {
            if entry.file_name() != ".terraform" {
                find_templates(&path, out)?;
            }
        } else if ft.is_file() && path.to_string_lossy().ends_with(".tf.tera") {
            out.push(path);
        }
    }
    Ok(())
}

fn render_one(name: &str, source: &str, context: &tera::Context) -> Result<String, WorkdirError> {
    let mut tera = tera::Tera::default();
    // Every `{{ … }}` is escaped for an HCL quoted string unless the template writes
    // `| safe`: parameter values come from members, and a raw `"` would let one close the
    // string and add a `local-exec` that runs on this machine.
    tera.autoescape_on(vec![""]);
    tera.set_escape_fn(escape_hcl_string);
    // Templates must not read the server's environment (database URLs, secrets).
    tera.register_function("get_env", refuse_get_env);
    tera.add_raw_template(name, source)
        .and_then(|()| tera.render(name, context))
        .map_err(|e| {
            let message = error_chain(&e);
            WorkdirError::Render {
                file: name.to_string(),
                line: error_line(&message, source),
                message,
            }
        })
}

/// `s` made safe inside an HCL quoted string (`"…"`) or heredoc: quotes, backslashes
/// and control characters escaped, and the `${`/`%{` that would start an interpolation or
/// directive doubled into their literal forms.
pub fn escape_hcl_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            '$' | '%' if chars.peek() == Some(&'{') => {
                out.push(c);
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

fn refuse_get_env(_: &std::collections::HashMap<String, tera::Value>) -> tera::Result<tera::Value> {
    Err(tera::Error::msg(
        "get_env is not available to templates: pass values as parameters instead",
    ))
}

/// tera's top-level message is often just "Failed to render 'x'"; the cause is below it.
fn error_chain(err: &tera::Error) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    parts.join(": ").replace('\n', " ")
}

/// Parse errors carry `--> line:col`; render errors only name the variable, so the first
/// line that mentions it inside `{{ }}`/`{% %}` is the best pointer we have.
fn error_line(message: &str, source: &str) -> Option<usize> {
    if let Some(pos) = message.find("--> ") {
        let rest = &message[pos + 4..];
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        if let Ok(line) = digits.parse() {
            return Some(line);
        }
    }
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    let needle = &message[start..start + len];
    source
        .lines()
        .position(|l| (l.contains("{{") || l.contains("{%")) && l.contains(needle))
        .map(|i| i + 1)
}

/// The work dir a job left behind, if its process died before removing it. When there
/// are several (a job retried after two crashes), the most recently modified one.
pub fn find_leftover(work_root: &Path, job_id: &str) -> Option<PathBuf> {
    let prefix = format!("{job_id}-");
    std::fs::read_dir(work_root)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
        .map(|e| e.path())
}

/// The newest state terraform wrote in a leftover dir: of `errored.tfstate`,
/// `terraform.tfstate` and its backup, the valid one with the highest serial (a kill
/// mid-write can truncate `terraform.tfstate`; the backup then still holds the state
/// from before the run). Ties go to `errored.tfstate`, written last.
pub fn read_leftover_state(dir: &Path) -> Option<Vec<u8>> {
    [ERRORED_STATE_FILE, STATE_FILE, BACKUP_STATE_FILE]
        .iter()
        .enumerate()
        .filter_map(|(rank, name)| {
            let bytes = super::untrusted_fs::read(dir, name, super::untrusted_fs::MAX_READ_BYTES)
                .ok()??;
            let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
            v.get("version")?;
            let serial = v["serial"].as_u64().unwrap_or(0);
            Some((serial, std::cmp::Reverse(rank), bytes))
        })
        .max_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)))
        .map(|(_, _, bytes)| bytes)
}

/// Removes every entry under `work_root`. Call at start, after recovering the state of
/// jobs whose process died (`find_leftover` + `read_leftover_state`): anything left is
/// from a dead process, holds secrets, and would otherwise accumulate forever.
pub fn wipe_leftovers(work_root: &Path) -> Result<usize, WorkdirError> {
    let entries = match std::fs::read_dir(work_root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(WorkdirError::io("reading", work_root)(e)),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry.map_err(WorkdirError::io("reading", work_root))?;
        let path = entry.path();
        let result = if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        result.map_err(WorkdirError::io("removing", &path))?;
        removed += 1;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn archive(files: &[(&str, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, body) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(body.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, path, body.as_bytes()).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn ctx() -> serde_json::Value {
        json!({
            "workspace": {"id": "w1", "name": "dev"},
            "owner": {"name": "alice", "email": "a@example.com"},
            "template": {"name": "local", "version": "v1"},
            "transition": "start",
            "parameters": {"cpu": "2"},
        })
    }

    #[test]
    fn prepares_a_private_dir_with_rendered_templates_and_state() {
        let root = tempfile::tempdir().unwrap();
        let bytes = archive(&[
            ("main.tf", "# static\n"),
            (
                "sub/vm.tf.tera",
                "# {{ owner.name }} <{{ owner.email }}> {{ transition }} cpu={{ parameters.cpu }}\n{% if transition == \"start\" %}# on{% endif %}\n",
            ),
        ]);
        let wd = prepare(
            root.path(),
            "job1",
            &bytes,
            &ctx(),
            Some(b"{\"version\":4}"),
        )
        .unwrap();
        let p = wd.path();
        assert!(p
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("job1-"));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(p).unwrap().permissions().mode() & 0o777,
            0o700
        );
        assert_eq!(
            std::fs::read_to_string(p.join("sub/vm.tf")).unwrap(),
            "# alice <a@example.com> start cpu=2\n# on\n"
        );
        assert!(!p.join("sub/vm.tf.tera").exists());
        assert_eq!(
            std::fs::read(p.join(STATE_FILE)).unwrap(),
            b"{\"version\":4}"
        );
        let path = p.to_path_buf();
        drop(wd);
        assert!(!path.exists());
    }

    /// What `x = "<rendered>"` means to HCL, or why it does not parse.
    fn hcl_string_value(rendered: &str) -> Result<String, String> {
        let body: hcl::Body =
            hcl::from_str(&format!("x = \"{rendered}\"\n")).map_err(|e| e.to_string())?;
        let attrs: Vec<_> = body.attributes().collect();
        if body.blocks().count() != 0 || attrs.len() != 1 {
            return Err(format!("more than one attribute: {body:?}"));
        }
        match attrs[0].expr() {
            hcl::Expression::String(s) => Ok(s.clone()),
            other => Err(format!("not a plain string: {other:?}")),
        }
    }

    #[test]
    fn parameter_values_cannot_escape_their_hcl_string() {
        let root = tempfile::tempdir().unwrap();
        let evil = "x\"\n}\nresource \"terraform_data\" \"pwn\" {\n  provisioner \"local-exec\" {\n    command = \"touch /tmp/pwned\"\n  }\n}\n# ${path.cwd} %{ if true }\\";
        let bytes = archive(&[(
            "main.tf.tera",
            "output \"v\" {\n  value = \"{{ parameters.v }}\"\n}\n# raw: {{ parameters.n | safe }}\n",
        )]);
        let mut ctx = ctx();
        ctx["parameters"] = json!({"v": evil, "n": "3"});
        let wd = prepare(root.path(), "job1", &bytes, &ctx, None).unwrap();
        let tf = std::fs::read_to_string(wd.path().join("main.tf")).unwrap();
        let body: hcl::Body = hcl::from_str(&tf).unwrap();
        assert_eq!(body.blocks().count(), 1, "{tf}");
        assert!(tf.ends_with("# raw: 3\n"), "{tf}");
        let line = tf.lines().nth(1).unwrap();
        let rendered = line.trim().strip_prefix("value = \"").unwrap();
        assert_eq!(
            hcl_string_value(rendered.strip_suffix('"').unwrap()).unwrap(),
            evil
        );
    }

    #[test]
    fn templates_cannot_read_the_servers_environment() {
        let root = tempfile::tempdir().unwrap();
        let bytes = archive(&[("main.tf.tera", "# {{ get_env(name=\"PATH\") }}\n")]);
        let err = prepare(root.path(), "job1", &bytes, &ctx(), None).unwrap_err();
        assert!(
            err.to_string().contains("get_env is not available"),
            "{err}"
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(20_000))]
        /// Whatever a member types, the escaped text inside quotes reads back as exactly it.
        #[test]
        fn escaped_strings_read_back_unchanged(s in "(\\PC|[\"\\\\$%{}\n\r\t\u{0}-\u{1f}\u{7f}])*") {
            proptest::prop_assert_eq!(hcl_string_value(&escape_hcl_string(&s)), Ok(s));
        }
    }

    #[test]
    fn tera_errors_name_file_and_line() {
        let root = tempfile::tempdir().unwrap();
        let bytes = archive(&[(
            "main.tf.tera",
            "# one\n# two\nname = \"{{ workspace.nope }}\"\n",
        )]);
        let err = prepare(root.path(), "j", &bytes, &ctx(), None).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, WorkdirError::Render { line: Some(3), .. }),
            "{msg}"
        );
        assert!(msg.starts_with("main.tf.tera:3:"), "{msg}");
        assert!(msg.contains("workspace.nope"), "{msg}");

        let bytes = archive(&[("main.tf.tera", "ok\n{% if %}\n")]);
        let err = prepare(root.path(), "j", &bytes, &ctx(), None).unwrap_err();
        assert!(
            matches!(err, WorkdirError::Render { line: Some(2), .. }),
            "{err}"
        );
    }

    #[test]
    fn bad_archives_are_refused_before_anything_runs() {
        let root = tempfile::tempdir().unwrap();
        let err = prepare(root.path(), "j", b"not a tar", &ctx(), None).unwrap_err();
        assert!(matches!(err, WorkdirError::Archive(_)), "{err}");
        let good = archive(&[("main.tf", "")]);
        for bad_id in ["", "../x", "a/b", ".."] {
            let err = prepare(root.path(), bad_id, &good, &ctx(), None).unwrap_err();
            assert!(matches!(err, WorkdirError::JobId(_)), "{bad_id}: {err}");
        }
    }

    #[test]
    fn leftover_state_prefers_highest_serial() {
        let root = tempfile::tempdir().unwrap();
        assert!(find_leftover(root.path(), "job7").is_none());
        let dir = root.path().join("job7-abc123");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::create_dir_all(root.path().join("job70-zzz")).unwrap();
        assert_eq!(find_leftover(root.path(), "job7").unwrap(), dir);
        assert!(read_leftover_state(&dir).is_none());

        std::fs::write(dir.join(BACKUP_STATE_FILE), r#"{"version":4,"serial":3}"#).unwrap();
        // Truncated by a kill mid-write: unreadable, so the backup wins.
        std::fs::write(dir.join(STATE_FILE), r#"{"version":4,"ser"#).unwrap();
        assert_eq!(
            read_leftover_state(&dir).unwrap(),
            br#"{"version":4,"serial":3}"#
        );
        std::fs::write(dir.join(STATE_FILE), r#"{"version":4,"serial":5}"#).unwrap();
        assert_eq!(
            read_leftover_state(&dir).unwrap(),
            br#"{"version":4,"serial":5}"#
        );
        std::fs::write(
            dir.join(ERRORED_STATE_FILE),
            r#"{"version":4,"serial":5,"e":1}"#,
        )
        .unwrap();
        assert_eq!(
            read_leftover_state(&dir).unwrap(),
            br#"{"version":4,"serial":5,"e":1}"#
        );

        assert_eq!(wipe_leftovers(root.path()).unwrap(), 2);
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0);
        assert_eq!(wipe_leftovers(&root.path().join("missing")).unwrap(), 0);
    }
}
