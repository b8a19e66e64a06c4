//! Builds the example guest kernels (under construction).
