//! Integration tests of `vigil-hunt`: one test binary, one module per concern.

mod capture;
mod files;
mod shared_data;
mod streaming;
