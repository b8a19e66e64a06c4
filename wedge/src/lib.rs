//! wedge: rewrites annotated sites per backend (not yet built; see issue 4).
