//! Independent models the property tests and the fuzz targets (`crates/pmem2/fuzz`) compare
//! the crate with: what mapping must return ([`validation`]) and what the copy functions must
//! leave in memory ([`shadow`]).
#![allow(dead_code, unsafe_code)]

pub mod shadow;
pub mod validation;
