//! The small closed vocabularies: roles, transitions, job and workspace statuses.
//! Each is stored as its `as_str()` text and parsed back with `FromStr`.

use serde::{Deserialize, Serialize};

macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!(
                        "unknown {} {other:?}; expected one of: {}",
                        stringify!($name),
                        [$($text),+].join(", ")
                    )),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(
    /// What a user may do. Owners do everything; template-admins manage templates and see
    /// every workspace; members manage their own workspaces.
    Role { Owner => "owner", TemplateAdmin => "template-admin", Member => "member" }
);

impl Role {
    pub fn can_manage_templates(self) -> bool {
        matches!(self, Role::Owner | Role::TemplateAdmin)
    }
    pub fn sees_all_workspaces(self) -> bool {
        matches!(self, Role::Owner | Role::TemplateAdmin)
    }
}

text_enum!(Transition { Start => "start", Stop => "stop", Delete => "delete" });

text_enum!(JobKind {
    TemplateVersionImport => "template_version_import",
    WorkspaceBuild => "workspace_build",
    TemplateVersionDryRun => "template_version_dry_run",
});

text_enum!(JobStatus {
    Pending => "pending",
    Running => "running",
    Succeeded => "succeeded",
    Failed => "failed",
    Canceling => "canceling",
    Canceled => "canceled",
});

impl JobStatus {
    /// A job in one of these will not change again.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobStatus::Succeeded | JobStatus::Failed | JobStatus::Canceled
        )
    }
}

text_enum!(WorkspaceStatus {
    Pending => "pending",
    Starting => "starting",
    Running => "running",
    Stopping => "stopping",
    Stopped => "stopped",
    Deleting => "deleting",
    Deleted => "deleted",
    Failed => "failed",
    Canceling => "canceling",
    Canceled => "canceled",
});

impl WorkspaceStatus {
    /// Derived, never stored: the latest build's transition and its job's status say it all.
    pub fn derive(transition: Transition, job: JobStatus) -> WorkspaceStatus {
        use JobStatus as J;
        use Transition as T;
        use WorkspaceStatus as W;
        match (job, transition) {
            (J::Pending, _) => W::Pending,
            (J::Running, T::Start) => W::Starting,
            (J::Running, T::Stop) => W::Stopping,
            (J::Running, T::Delete) => W::Deleting,
            (J::Succeeded, T::Start) => W::Running,
            (J::Succeeded, T::Stop) => W::Stopped,
            (J::Succeeded, T::Delete) => W::Deleted,
            (J::Failed, _) => W::Failed,
            (J::Canceling, _) => W::Canceling,
            (J::Canceled, _) => W::Canceled,
        }
    }

    /// True while a build is queued or running: a second one is refused.
    pub fn is_busy(self) -> bool {
        use WorkspaceStatus as W;
        matches!(
            self,
            W::Pending | W::Starting | W::Stopping | W::Deleting | W::Canceling
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_round_trip() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), *r);
        }
        for s in JobStatus::ALL {
            assert_eq!(s.as_str().parse::<JobStatus>().unwrap(), *s);
        }
        let err = "admin".parse::<Role>().unwrap_err();
        assert!(err.contains("owner, template-admin, member"), "{err}");
    }

    #[test]
    fn workspace_status_is_derived_from_the_latest_build() {
        use WorkspaceStatus as W;
        assert_eq!(
            WorkspaceStatus::derive(Transition::Start, JobStatus::Succeeded),
            W::Running
        );
        assert_eq!(
            WorkspaceStatus::derive(Transition::Stop, JobStatus::Succeeded),
            W::Stopped
        );
        assert_eq!(
            WorkspaceStatus::derive(Transition::Stop, JobStatus::Running),
            W::Stopping
        );
        assert_eq!(
            WorkspaceStatus::derive(Transition::Delete, JobStatus::Failed),
            W::Failed
        );
        assert!(W::Pending.is_busy() && !W::Failed.is_busy());
    }
}
