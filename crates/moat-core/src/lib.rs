//! The sans-IO domain of moat.
//!
//! Everything here takes data (and, where it matters, time) in and returns decisions out: no
//! tokio, no HTTP, no SQL. That keeps the rules a company relies on (who may call what, how
//! usage is counted, which error a client sees) testable in milliseconds and identical across
//! every transport and store that builds on them.

pub mod audit;
pub mod budget;
pub mod cache_policy;
pub mod dialect;
pub mod error_code;
pub mod estimate;
pub mod health;
pub mod identity;
pub mod period;
pub mod policy;
pub mod price;
pub mod principal;
pub mod quota;
pub mod rollup;
pub mod routing;
pub mod usage;
pub mod usage_record;

pub use cache_policy::{CachePolicy, CacheScope};
pub use dialect::Dialect;
pub use error_code::ErrorCode;
pub use health::{BreakerPolicy, CircuitBreaker, HealthState};
pub use identity::{Action, Actor, Denied, KeyOwner, OrgRole, TeamRole, UserKind};
pub use period::{Period, Window as PeriodWindow};
pub use policy::{Location, Policy, PromptLogging, SecretAction};
pub use price::{CostModel, Price};
pub use principal::{ModelAccess, Principal, Role};
pub use routing::{DeploymentId, DeploymentView, Member, ModelCatalog, ModelRoute, PlanError, RoutePlan, Strategy};
pub use usage::Usage;
pub use usage_record::UsageRecord;
