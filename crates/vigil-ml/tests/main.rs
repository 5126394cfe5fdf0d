//! vigil-ml integration tests: parity with scikit-learn through committed fixtures, and
//! batched scoring against one row at a time.

mod batch;
mod parity;
