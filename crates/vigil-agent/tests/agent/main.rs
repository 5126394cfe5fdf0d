//! Integration tests of the agent against a fake server over real HTTP on 127.0.0.1.

mod helpers;

mod cli;
mod enroll;
mod sensors;
mod shipping;
mod tailing;
