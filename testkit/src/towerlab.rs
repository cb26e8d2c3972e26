//! Driving the `towerlab` binary from tests.
