//! certflow's domain (pure rules on typed values, in [`domain`]) and its sea-orm entities (in [`orm`]).

pub mod clock;
pub mod domain;
pub mod orm;
pub mod settings;
