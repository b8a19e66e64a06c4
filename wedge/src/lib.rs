//! wedge: reads the `.afterburn` annotations of a kernel image and rewrites every site for a
//! backend.
//!
//! * [`sites::read_sites`]: the sites of a linked kernel, resolved to virtual addresses.
//! * [`patch::Backend`]: what a backend decides per site; [`patch::patch`] applies it to an
//!   [`image::Image`], all or nothing, with errors that name the site.
//! * [`bare::Bare`]: keeps every site (and checks it holds its original instruction).
//! * [`kvm::Kvm`]: rewrites sites into calls and inline code over the virtual CPU of the
//!   guest-side runtime ([`runtime`]), for a guest kernel that runs deprivileged at CPL3.
//! * [`layout`]: the kvm backend's memory layout, shared with the runtime and the loader.
//!
//! docs/backends.md describes the backends, docs/hypercall-abi.md the guest/host interface.

pub mod bare;
pub mod image;
pub mod kvm;
pub mod layout;
pub mod original;
pub mod patch;
pub mod runtime;
pub mod sites;

pub use patch::{patch, Backend, PatchError, PatchReport, Rewrite};
pub use sites::{read_sites, Site, SitesError};
