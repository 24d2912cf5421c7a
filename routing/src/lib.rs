//! BIRD 2 configuration rendering and control for Groundwork's edge routing.
//!
//! The crate takes a plain [`model::RouterConfig`] (no Kubernetes types),
//! [`validate`]s it, [`render`]s a deterministic BIRD 2 configuration, applies
//! it safely through BIRD's control socket ([`apply::Applier`]: syntax check,
//! `configure timeout`, verification, `configure confirm`, automatic rollback)
//! and reads session status back ([`birdc::BirdClient`], [`status`]).

pub mod apply;
pub mod birdc;
pub mod model;
pub mod names;
pub mod render;
pub mod reply;
pub mod status;
pub mod validate;

pub use apply::{Applier, ApplyError, ApplyOutcome};
pub use birdc::{BirdClient, BirdError};
pub use model::*;
pub use render::{RenderOptions, RenderedConfig, render, render_with};
pub use status::{BgpState, Diagnosis, SessionStatus, diagnose};
pub use validate::{ValidationError, ValidationErrors, parse_prefix, validate};
