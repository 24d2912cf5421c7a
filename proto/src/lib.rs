//! The agent API, generated from `groundwork/agent/v1/agent.proto`.

/// `groundwork.agent.v1`: messages, the client the agent uses and the server the controller
/// implements.
#[allow(missing_docs, clippy::all, clippy::unwrap_used, clippy::expect_used)]
pub mod agent_v1 {
    tonic::include_proto!("groundwork.agent.v1");
}
