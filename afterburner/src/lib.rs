//! afterburner: scan, pad and annotate sensitive instructions (under construction).
