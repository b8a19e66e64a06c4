//! How a run ends, and the process exit code for each end (the cross-component contract).
//!
//! | code | end |
//! |---|---|
//! | 0..=99 | the guest wrote status `s` to the debug-exit port (`s` > 99 is reported as 99) |
//! | 100 | could not start: bad arguments, bad kernel file, no /dev/kvm, backend not available |
//! | 101 | triple fault / shutdown (`KVM_EXIT_SHUTDOWN`, system-event shutdown or reset) |
//! | 102 | KVM emulation failure or internal error (`KVM_EXIT_INTERNAL_ERROR`, failed entry, `KVM_RUN` error) |
//! | 103 | another exit the loader does not handle |
//! | 104 | timeout (`--timeout`) |
//! | 105 | the guest broke the hypercall ABI (kvm backend) |

use std::time::Duration;

use crate::devices::debug_exit::exit_code_for_status;

/// Exit code: the loader could not start the guest.
pub const EXIT_START_FAILURE: u8 = 100;
/// Exit code: triple fault or shutdown.
pub const EXIT_SHUTDOWN: u8 = 101;
/// Exit code: KVM emulation failure or internal error.
pub const EXIT_INTERNAL_ERROR: u8 = 102;
/// Exit code: an exit the loader does not handle.
pub const EXIT_UNHANDLED: u8 = 103;
/// Exit code: the timeout expired.
pub const EXIT_TIMEOUT: u8 = 104;
/// Exit code: the guest broke the hypercall ABI.
pub const EXIT_HYPERCALL_ABI: u8 = 105;

/// `KVM_INTERNAL_ERROR_EMULATION`.
pub const SUBERROR_EMULATION: u32 = 1;

/// Why the guest stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// The guest wrote a status to the debug-exit port.
    GuestExit {
        /// The status written.
        status: u32,
    },
    /// `KVM_EXIT_SHUTDOWN`: a triple fault (or another shutdown condition).
    Shutdown,
    /// `KVM_EXIT_SYSTEM_EVENT` (shutdown, reset, crash, ...).
    SystemEvent {
        /// `KVM_SYSTEM_EVENT_*`.
        kind: u32,
    },
    /// `KVM_EXIT_INTERNAL_ERROR`.
    InternalError {
        /// `KVM_INTERNAL_ERROR_*` (1 = emulation failure).
        suberror: u32,
        /// The error's data words.
        data: Vec<u64>,
    },
    /// `KVM_EXIT_FAIL_ENTRY`: the hardware refused to enter the guest.
    FailEntry {
        /// `hardware_entry_failure_reason`.
        reason: u64,
    },
    /// `KVM_RUN` itself failed.
    RunFailed {
        /// The error.
        error: String,
    },
    /// An exit the loader does not handle.
    Unhandled {
        /// Its name (e.g. `KVM_EXIT_DEBUG`).
        exit: String,
    },
    /// `--timeout` expired.
    Timeout {
        /// The timeout.
        after: Duration,
    },
    /// The guest broke the hypercall ABI (kvm backend).
    HypercallAbi {
        /// What it did.
        detail: String,
    },
}

/// Name of a `KVM_SYSTEM_EVENT_*` type.
pub fn system_event_name(kind: u32) -> &'static str {
    match kind {
        1 => "shutdown",
        2 => "reset",
        3 => "crash",
        4 => "wakeup",
        5 => "suspend",
        6 => "sev-termination",
        _ => "unknown",
    }
}

/// Name of a `KVM_INTERNAL_ERROR_*` suberror.
pub fn suberror_name(suberror: u32) -> &'static str {
    match suberror {
        1 => "emulation failure (KVM_INTERNAL_ERROR_EMULATION)",
        2 => "exception while delivering an exception (KVM_INTERNAL_ERROR_SIMUL_EX)",
        3 => "exit while delivering an event (KVM_INTERNAL_ERROR_DELIVERY_EV)",
        4 => "unexpected exit reason (KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON)",
        _ => "unknown suberror",
    }
}

/// The instruction bytes of an emulation failure, when KVM reported them
/// (`KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES` in `data[0]`; then `data[1..]` holds
/// `u8 insn_size` followed by up to 15 instruction bytes, little-endian).
pub fn emulation_failure_bytes(suberror: u32, data: &[u64]) -> Option<Vec<u8>> {
    if suberror != SUBERROR_EMULATION || data.first().is_none_or(|f| f & 1 == 0) {
        return None;
    }
    let raw: Vec<u8> = data
        .get(1..3)?
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .collect();
    let size = usize::from(raw[0]).min(15);
    Some(raw[1..1 + size].to_vec())
}

impl EndReason {
    /// The process exit code (see the module documentation).
    pub fn exit_code(&self) -> u8 {
        match self {
            EndReason::GuestExit { status } => exit_code_for_status(*status),
            EndReason::Shutdown => EXIT_SHUTDOWN,
            EndReason::SystemEvent { kind: 1 | 2 } => EXIT_SHUTDOWN,
            EndReason::SystemEvent { .. } => EXIT_UNHANDLED,
            EndReason::InternalError { .. } => EXIT_INTERNAL_ERROR,
            EndReason::FailEntry { .. } => EXIT_INTERNAL_ERROR,
            EndReason::RunFailed { .. } => EXIT_INTERNAL_ERROR,
            EndReason::Unhandled { .. } => EXIT_UNHANDLED,
            EndReason::Timeout { .. } => EXIT_TIMEOUT,
            EndReason::HypercallAbi { .. } => EXIT_HYPERCALL_ABI,
        }
    }

    /// The short name used in the stats JSON (`end.reason`).
    pub fn name(&self) -> &'static str {
        match self {
            EndReason::GuestExit { .. } => "guest_exit",
            EndReason::Shutdown => "shutdown",
            EndReason::SystemEvent { .. } => "system_event",
            EndReason::InternalError {
                suberror: SUBERROR_EMULATION,
                ..
            } => "emulation_failure",
            EndReason::InternalError { .. } => "internal_error",
            EndReason::FailEntry { .. } => "fail_entry",
            EndReason::RunFailed { .. } => "run_failed",
            EndReason::Unhandled { .. } => "unhandled_exit",
            EndReason::Timeout { .. } => "timeout",
            EndReason::HypercallAbi { .. } => "hypercall_abi",
        }
    }

    /// The guest's status, if it wrote one.
    pub fn guest_status(&self) -> Option<u32> {
        match self {
            EndReason::GuestExit { status } => Some(*status),
            _ => None,
        }
    }

    /// Whether this end deserves the diagnostic report (registers, last serial lines).
    pub fn is_abnormal(&self) -> bool {
        !matches!(self, EndReason::GuestExit { .. })
    }

    /// A one-line human description.
    pub fn describe(&self) -> String {
        match self {
            EndReason::GuestExit { status } if *status > 99 => format!(
                "the guest exited with status {status} (above 99, reported as 99)"
            ),
            EndReason::GuestExit { status } => format!("the guest exited with status {status}"),
            EndReason::Shutdown => "triple fault / shutdown (KVM_EXIT_SHUTDOWN)".into(),
            EndReason::SystemEvent { kind } => format!(
                "system event {kind} ({}) (KVM_EXIT_SYSTEM_EVENT)",
                system_event_name(*kind)
            ),
            EndReason::InternalError { suberror, data } => {
                let words: Vec<String> = data.iter().map(|d| format!("{d:#x}")).collect();
                let insn = emulation_failure_bytes(*suberror, data).map_or(String::new(), |b| {
                    let hex: Vec<String> = b.iter().map(|x| format!("{x:02x}")).collect();
                    format!("; instruction bytes {}", hex.join(" "))
                });
                format!(
                    "KVM internal error, suberror {suberror}: {} (KVM_EXIT_INTERNAL_ERROR){insn}; data [{}]",
                    suberror_name(*suberror),
                    words.join(", ")
                )
            }
            EndReason::FailEntry { reason } => format!(
                "the CPU refused to enter the guest, hardware reason {reason:#x} (KVM_EXIT_FAIL_ENTRY)"
            ),
            EndReason::RunFailed { error } => format!("KVM_RUN failed: {error}"),
            EndReason::Unhandled { exit } => format!("unhandled exit {exit}"),
            EndReason::Timeout { after } => {
                format!("timeout: the guest was stopped after {:.3} s", after.as_secs_f64())
            }
            EndReason::HypercallAbi { detail } => format!("hypercall ABI violation: {detail}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_codes() {
        assert_eq!(EndReason::GuestExit { status: 0 }.exit_code(), 0);
        assert_eq!(EndReason::GuestExit { status: 7 }.exit_code(), 7);
        assert_eq!(EndReason::GuestExit { status: 1000 }.exit_code(), 99);
        assert_eq!(EndReason::Shutdown.exit_code(), 101);
        assert_eq!(EndReason::SystemEvent { kind: 2 }.exit_code(), 101);
        assert_eq!(EndReason::SystemEvent { kind: 3 }.exit_code(), 103);
        let ie = EndReason::InternalError {
            suberror: 1,
            data: vec![],
        };
        assert_eq!((ie.exit_code(), ie.name()), (102, "emulation_failure"));
        let ie = EndReason::InternalError {
            suberror: 3,
            data: vec![],
        };
        assert_eq!((ie.exit_code(), ie.name()), (102, "internal_error"));
        assert_eq!(EndReason::FailEntry { reason: 7 }.exit_code(), 102);
        assert_eq!(EndReason::RunFailed { error: "x".into() }.exit_code(), 102);
        assert_eq!(EndReason::Unhandled { exit: "x".into() }.exit_code(), 103);
        assert_eq!(
            EndReason::Timeout {
                after: Duration::from_secs(1)
            }
            .exit_code(),
            104
        );
        assert_eq!(
            EndReason::HypercallAbi { detail: "x".into() }.exit_code(),
            105
        );
    }

    #[test]
    fn emulation_failure_instruction_bytes() {
        // As reported by a PVM host for `int3` followed by `mov $1, %eax`.
        let data = [0x1, 0x6600_0000_01b8_cc0f, 0xfdeb_f4fa_ef00_f4ba, 0x1000];
        let b = emulation_failure_bytes(1, &data).unwrap();
        assert_eq!(b.len(), 15);
        assert_eq!(&b[..6], &[0xcc, 0xb8, 0x01, 0x00, 0x00, 0x00]);
        let d = EndReason::InternalError {
            suberror: 1,
            data: data.to_vec(),
        }
        .describe();
        assert!(d.contains("instruction bytes cc b8 01"), "{d}");
        assert_eq!(
            emulation_failure_bytes(1, &[0x0, 0x10f]),
            None,
            "flag clear"
        );
        assert_eq!(emulation_failure_bytes(2, &data), None, "other suberror");
        assert_eq!(emulation_failure_bytes(1, &[0x1]), None, "too short");
        assert_eq!(
            emulation_failure_bytes(1, &[0x1, 0xff, 0]).unwrap().len(),
            15,
            "size capped"
        );
    }

    #[test]
    fn descriptions() {
        assert!(EndReason::GuestExit { status: 300 }
            .describe()
            .contains("reported as 99"));
        let d = EndReason::InternalError {
            suberror: 1,
            data: vec![0x10, 0x2],
        }
        .describe();
        assert!(
            d.contains("emulation failure") && d.contains("[0x10, 0x2]"),
            "{d}"
        );
        assert!(EndReason::Shutdown.describe().contains("triple fault"));
        assert_eq!(EndReason::GuestExit { status: 5 }.guest_status(), Some(5));
        assert_eq!(EndReason::Shutdown.guest_status(), None);
    }
}
