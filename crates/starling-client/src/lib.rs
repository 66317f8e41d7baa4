//! starling-client
