//! A job's life, one type for the store, the API, the client, the CLI and
//! crash recovery.
//!
//! ```text
//! queued ──┬──▶ running ──▶ released | failed | cancelled
//!          ├──▶ awaiting_review ──▶ running ... | rejected | cancelled
//!          └──▶ rejected | cancelled
//! ```
//! A running job's change to its final state happens on its schedule
//! (docs/threat-model.md, "Timing").

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Accepted and being checked; nothing reserved, nothing read.
    Queued,
    /// Held until enough reviewers approve its manifest digest; nothing
    /// reserved, nothing read.
    AwaitingReview,
    /// Its budget is reserved and it runs (or its outcome waits for its
    /// due time).
    Running,
    /// Its signed release is stored and its spend committed.
    Released,
    /// Refused from its manifest, query or budget alone, or by a reviewer;
    /// nothing was spent.
    Rejected,
    /// It failed while running (its deadline, memory, or a restart); its
    /// spend stays; nothing was released.
    Failed,
    /// A suspension or revocation stopped it; a job that had started keeps
    /// its spend; nothing was released.
    Cancelled,
}

impl JobState {
    pub const ALL: [JobState; 7] = [
        JobState::Queued,
        JobState::AwaitingReview,
        JobState::Running,
        JobState::Released,
        JobState::Rejected,
        JobState::Failed,
        JobState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::AwaitingReview => "awaiting_review",
            JobState::Running => "running",
            JobState::Released => "released",
            JobState::Rejected => "rejected",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<JobState> {
        JobState::ALL.into_iter().find(|j| j.as_str() == s)
    }

    /// A job in a final state never changes again.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Released | JobState::Rejected | JobState::Failed | JobState::Cancelled
        )
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// So that `job.state == "released"` reads as the wire form does.
impl PartialEq<&str> for JobState {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<str> for JobState {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

#[cfg(test)]
mod tests {
    use super::JobState;

    #[test]
    fn every_state_round_trips_and_only_the_ends_are_final() {
        for s in JobState::ALL {
            assert_eq!(JobState::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        let finals: Vec<_> = JobState::ALL.into_iter().filter(|s| s.is_final()).collect();
        assert_eq!(
            finals,
            [
                JobState::Released,
                JobState::Rejected,
                JobState::Failed,
                JobState::Cancelled
            ]
        );
    }
}
