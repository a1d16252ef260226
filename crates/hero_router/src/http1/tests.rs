//! Unit tests of the framing authority.
