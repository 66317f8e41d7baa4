//! starling-broker
