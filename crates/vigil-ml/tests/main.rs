//! vigil-ml integration tests: parity with scikit-learn through committed fixtures.

mod parity;
