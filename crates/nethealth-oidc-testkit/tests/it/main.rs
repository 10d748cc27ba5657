//! The test kit's own tests, through real HTTP on loopback (one binary, to keep link time down).

mod common;
mod device;
mod faults;
mod login;
mod resources;
mod site;
mod token;
