//! loader: launches guests on KVM (under construction).
