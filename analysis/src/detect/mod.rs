//! Detection: what opens an incident. Service-level objectives on the user-facing services
//! with multiwindow, multi-burn-rate alerts ([`slo`]), and departures of their RED figures from
//! their own baselines ([`baseline`]); each alert a [`Symptom`].

pub mod baseline;
mod config;
pub mod slo;
mod symptom;

pub use config::{BaselineConfig, DetectConfig, Slo};
pub use symptom::{Detector, Deviation, Symptom};
