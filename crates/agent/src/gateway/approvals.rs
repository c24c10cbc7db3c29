//! The gateway's exec approvals, typed as `../shared/openclaw-gateway.md` records them: the
//! `exec.approval.requested` / `exec.approval.resolved` events, `exec.approval.list` (backfill
//! after every `hello-ok`) and `exec.approval.resolve`. Fields the agent does not use are ignored;
//! what it shows a person becomes a [`clawtray_proto::chat::ApprovalRequest`].

use serde::{Deserialize, Serialize};
use serde_json::Value;

use clawtray_proto::chat::{ApprovalDecision, ApprovalRequest};

use super::client::{GatewayClient, GatewayError};

/// The event of a new approval.
pub const REQUESTED: &str = "exec.approval.requested";
/// The event of an answered approval.
pub const RESOLVED: &str = "exec.approval.resolved";
/// The method listing approvals waiting now.
pub const LIST: &str = "exec.approval.list";
/// The method answering one.
pub const RESOLVE: &str = "exec.approval.resolve";

/// An approval as the gateway gives it (the `requested` event, and each `list` entry).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayApproval {
    pub id: String,
    #[serde(default)]
    pub created_at_ms: Option<u64>,
    #[serde(default)]
    pub expires_at_ms: Option<u64>,
    #[serde(default)]
    pub request: ExecRequest,
}

/// What the exec wants to do.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecRequest {
    #[serde(default)]
    pub command: Option<String>,
    #[serde(default)]
    pub cwd: Option<String>,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub agent_id: Option<String>,
    #[serde(default)]
    pub session_key: Option<String>,
    #[serde(default)]
    pub warning_text: Option<String>,
    /// The answers the gateway will take; unknown names are skipped.
    #[serde(default)]
    pub allowed_decisions: Option<Vec<Value>>,
}

/// `exec.approval.resolved`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayResolved {
    pub id: String,
    #[serde(default)]
    pub decision: Option<String>,
    #[serde(default)]
    pub resolved_by: Option<Value>,
}

/// One of the two approval events.
#[derive(Debug, Clone)]
pub enum ApprovalEvent {
    Requested(ApprovalRequest),
    Resolved {
        id: String,
        decision: Option<ApprovalDecision>,
        by: Option<String>,
    },
}

impl ApprovalEvent {
    /// Read an approval event; `Ok(None)` for any other event.
    ///
    /// # Errors
    /// [`GatewayError::MalformedEvent`] naming the event, with the shape of what was wrong.
    pub fn parse(name: &str, payload: &Value) -> Result<Option<Self>, GatewayError> {
        let malformed = |event: &'static str, e: serde_json::Error| GatewayError::MalformedEvent {
            event,
            detail: clawtray_proto::delivery::json_error_shape(&e),
        };
        match name {
            REQUESTED => {
                let a: GatewayApproval =
                    GatewayApproval::deserialize(payload).map_err(|e| malformed(REQUESTED, e))?;
                Ok(Some(ApprovalEvent::Requested(a.into_request())))
            }
            RESOLVED => {
                let r: GatewayResolved =
                    GatewayResolved::deserialize(payload).map_err(|e| malformed(RESOLVED, e))?;
                Ok(Some(ApprovalEvent::Resolved {
                    id: r.id,
                    decision: r.decision.as_deref().and_then(ApprovalDecision::parse),
                    by: r.resolved_by.as_ref().and_then(who),
                }))
            }
            _ => Ok(None),
        }
    }
}

/// A readable name for `resolvedBy` (a string, or an object with a name or id).
fn who(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Object(o) => ["displayName", "name", "clientId", "deviceId", "id"]
            .iter()
            .find_map(|k| o.get(*k).and_then(Value::as_str))
            .map(str::to_owned),
        _ => None,
    }
}

impl GatewayApproval {
    /// What a desktop is shown.
    #[must_use]
    pub fn into_request(self) -> ApprovalRequest {
        let r = self.request;
        let allowed = r
            .allowed_decisions
            .map(|d| {
                d.iter()
                    .filter_map(Value::as_str)
                    .filter_map(ApprovalDecision::parse)
                    .collect()
            })
            // the gateway did not say: offer what every policy allows
            .unwrap_or_else(|| vec![ApprovalDecision::AllowOnce, ApprovalDecision::Deny]);
        let created = self.created_at_ms.unwrap_or(0);
        ApprovalRequest {
            id: self.id,
            command: r.command.unwrap_or_default(),
            cwd: r.cwd,
            host: r.host,
            agent_id: r.agent_id,
            session_key: r.session_key,
            warning: r.warning_text.filter(|w| !w.trim().is_empty()),
            created_at_ms: created,
            // the gateway's default lifetime is 30 minutes
            expires_at_ms: self
                .expires_at_ms
                .unwrap_or(created.saturating_add(30 * 60 * 1000)),
            allowed,
        }
    }
}

/// `exec.approval.resolve` parameters (the gateway takes no other fields).
#[derive(Debug, Serialize)]
pub struct Resolve<'a> {
    pub id: &'a str,
    pub decision: &'a str,
}

impl GatewayClient {
    /// The approvals waiting now (`exec.approval.list`).
    ///
    /// # Errors
    /// The gateway's error, or [`GatewayError::Malformed`] when the answer cannot be read.
    pub async fn approvals(&self) -> Result<Vec<ApprovalRequest>, GatewayError> {
        let v = self.request(LIST, serde_json::json!({})).await?;
        let list: Vec<GatewayApproval> = match v {
            Value::Array(_) => serde_json::from_value(v),
            // some versions wrap the list
            Value::Object(ref o) if o.contains_key("approvals") => {
                serde_json::from_value(o["approvals"].clone())
            }
            _ => Ok(Vec::new()),
        }
        .map_err(|e| GatewayError::Malformed {
            method: LIST,
            detail: clawtray_proto::delivery::json_error_shape(&e),
        })?;
        Ok(list
            .into_iter()
            .map(GatewayApproval::into_request)
            .collect())
    }

    /// Answer an approval (`exec.approval.resolve`). The `resolved` event may come first.
    ///
    /// # Errors
    /// The gateway's error (an unknown or expired id, a decision the policy does not allow).
    pub async fn resolve_approval(
        &self,
        id: &str,
        decision: ApprovalDecision,
    ) -> Result<(), GatewayError> {
        let p = Resolve {
            id,
            decision: decision.as_str(),
        };
        let params = serde_json::to_value(&p).map_err(|e| GatewayError::Malformed {
            method: RESOLVE,
            detail: e.to_string(),
        })?;
        self.request(RESOLVE, params).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_requested_event_becomes_what_a_desktop_is_shown() {
        // as observed on the wire (openclaw 2026.9.6)
        let payload = json!({"approvalKind": "exec", "id": "ap-1", "createdAtMs": 1000, "expiresAtMs": 1_801_000,
            "request": {"command": "ls -la /tmp", "cwd": "/home/me", "host": "gateway", "security": "full", "ask": "always",
                "agentId": "main", "sessionKey": "agent:main:main", "runId": "r1", "toolCallId": "t1",
                "commandAnalysis": {"commandCount": 1, "riskKinds": [], "warningLines": []},
                "allowedDecisions": ["allow-once", "deny"], "unavailableDecisions": ["allow-always"]}});
        let Some(ApprovalEvent::Requested(r)) = ApprovalEvent::parse(REQUESTED, &payload).unwrap()
        else {
            panic!("a request")
        };
        assert_eq!(r.id, "ap-1");
        assert_eq!(r.command, "ls -la /tmp");
        assert_eq!(r.cwd.as_deref(), Some("/home/me"));
        assert_eq!(r.session_key.as_deref(), Some("agent:main:main"));
        assert_eq!(r.expires_at_ms, 1_801_000);
        assert_eq!(
            r.allowed,
            vec![ApprovalDecision::AllowOnce, ApprovalDecision::Deny]
        );
        assert_eq!(r.warning, None);
    }

    #[test]
    fn resolved_events_name_the_decision_and_who() {
        let e = ApprovalEvent::parse(
            RESOLVED,
            &json!({"id": "ap-1", "decision": "deny", "resolvedBy": {"displayName": "clawtray-agent"}, "ts": 5}),
        )
        .unwrap();
        let Some(ApprovalEvent::Resolved { id, decision, by }) = e else {
            panic!("resolved")
        };
        assert_eq!(id, "ap-1");
        assert_eq!(decision, Some(ApprovalDecision::Deny));
        assert_eq!(by.as_deref(), Some("clawtray-agent"));
        assert!(ApprovalEvent::parse("chat", &json!({})).unwrap().is_none());
        assert!(matches!(
            ApprovalEvent::parse(REQUESTED, &json!({"command": "no id"})),
            Err(GatewayError::MalformedEvent { .. })
        ));
    }
}
