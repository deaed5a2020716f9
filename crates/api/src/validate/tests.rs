//! Table-driven tests: one rejecting and one accepting input for every validation rule, with Kuma's exact paths
//! and messages.
