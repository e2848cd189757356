//! What a caller may do: every use case names its [`Action`], and this table says which role
//! it needs. Checked by the core (the services), not by the HTTP layer, so that every front end
//! gets the same answer (and agency scopes have one place to go).

use crate::access::{Principal, Role};
use crate::audit::Actor;
use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    PostFrames,
    ReadWatchlists,
    CreateLists,
    DeleteLists,
    ReadPolicies,
    ChangePolicies,
    ReadSubjects,
    EnrollSubjects,
    DeleteSubjects,
    ReadAlerts,
    ReviewAlerts,
    WatchAlerts,
    CreateTokens,
    ListTokens,
    RevokeTokens,
    ReadAudit,
    VerifyAudit,
    ReadEvents,
    ReadCameras,
    /// How reviewed alerts came out by score (ops tune thresholds with it; no alert content).
    ReadReviewRates,
}

impl Action {
    /// Roles do not nest (separation of duties): exactly one role may do each thing.
    pub fn role(self) -> Role {
        use Action::*;
        match self {
            PostFrames => Role::Camera,
            ReadWatchlists | CreateLists | DeleteLists | ReadPolicies | ChangePolicies | ReadSubjects
            | EnrollSubjects | DeleteSubjects | ReadCameras | ReadReviewRates => Role::Ops,
            ReadAlerts | ReviewAlerts | WatchAlerts => Role::Officer,
            CreateTokens | ListTokens | RevokeTokens | ReadAudit | VerifyAudit => Role::Admin,
            ReadEvents => Role::Relay,
        }
    }

    /// As error messages say it ("role camera may not read alerts").
    pub fn describe(self) -> &'static str {
        use Action::*;
        match self {
            PostFrames => "post frames",
            ReadWatchlists => "read watch lists",
            CreateLists => "create watch lists",
            DeleteLists => "delete watch lists",
            ReadPolicies => "read policies",
            ChangePolicies => "change policies",
            ReadSubjects => "read subjects",
            EnrollSubjects => "enroll subjects",
            DeleteSubjects => "delete subjects",
            ReadAlerts => "read alerts",
            ReviewAlerts => "review alerts",
            WatchAlerts => "watch alerts",
            CreateTokens => "create tokens",
            ListTokens => "list tokens",
            RevokeTokens => "revoke tokens",
            ReadAudit => "read the audit log",
            VerifyAudit => "verify the audit log",
            ReadEvents => "read events",
            ReadCameras => "read cameras",
            ReadReviewRates => "read review rates",
        }
    }
}

/// Who asks: a token's holder (the API), or the operator at the machine itself (a command run
/// on the data folder, which needs shell access to the checkpoint and is trusted as such).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Token(Principal),
    Local,
}

impl Caller {
    /// `Forbidden` unless this caller may do `action`.
    pub fn may(&self, action: Action) -> Result<()> {
        match self {
            Caller::Local => Ok(()),
            Caller::Token(p) if p.role == action.role() => Ok(()),
            Caller::Token(p) => {
                Err(Error::Forbidden { role: p.role.to_string(), action: action.describe().to_string() })
            }
        }
    }

    /// The token holder, for what only a person with a token can do (reviews count principals).
    pub fn principal(&self) -> Option<&Principal> {
        match self {
            Caller::Token(p) => Some(p),
            Caller::Local => None,
        }
    }

    /// As the audit log names the caller.
    pub fn actor(&self) -> Actor {
        match self {
            Caller::Token(p) => p.actor(),
            Caller::Local => Actor::local(),
        }
    }
}

impl From<Principal> for Caller {
    fn from(p: Principal) -> Self {
        Caller::Token(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(role: Role) -> Caller {
        Caller::Token(Principal { token_id: 1, name: "t".into(), role, principal: "p".into(), cameras: Vec::new() })
    }

    #[test]
    fn each_action_belongs_to_one_role_and_the_local_operator() {
        use Action::*;
        let all = [
            PostFrames,
            ReadWatchlists,
            CreateLists,
            DeleteLists,
            ReadPolicies,
            ChangePolicies,
            ReadSubjects,
            EnrollSubjects,
            DeleteSubjects,
            ReadAlerts,
            ReviewAlerts,
            WatchAlerts,
            CreateTokens,
            ListTokens,
            RevokeTokens,
            ReadAudit,
            VerifyAudit,
            ReadEvents,
            ReadCameras,
            ReadReviewRates,
        ];
        for a in all {
            assert!(Caller::Local.may(a).is_ok());
            let allowed: Vec<Role> = Role::ALL.into_iter().filter(|r| token(*r).may(a).is_ok()).collect();
            assert_eq!(allowed, [a.role()], "{a:?}");
        }
        let e = token(Role::Camera).may(ReadAlerts).unwrap_err().to_string();
        assert_eq!(e, "role camera may not read alerts");
    }
}
