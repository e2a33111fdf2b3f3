//! The versions of the plugin contract (`sandcron:plugin`) the host links,
//! one module per released world: its generated bindings, the adapters
//! from its types to the version-independent operations of
//! [`RunState`](super::RunState), and its view of a run's context. A new
//! world arrives as a module beside the others, with its own frozen WIT,
//! so plugins built against an older one keep running.

pub mod v0_1;
