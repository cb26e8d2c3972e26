//! The SQLite store: experiments, runs, metrics, manager weights and artifacts.
