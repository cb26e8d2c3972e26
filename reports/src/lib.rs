//! Paper-ready tables and figures, computed from plain data.
