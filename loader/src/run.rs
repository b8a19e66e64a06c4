//! Running a built machine: the vCPU loop on its own thread, the watchdog that ends it on
//! `--timeout`, and what the run leaves behind (`RunOutcome`).
//!
//! The watchdog (the calling thread) waits for the vCPU thread; when the timeout expires it
//! sets a stop flag and sends the vCPU thread a real-time signal (`SIGRTMIN`, whose handler does
//! nothing) every `KICK_INTERVAL` until the thread ends. The signal makes a running `KVM_RUN`
//! return `EINTR` (also from an in-kernel `hlt`); the loop checks the flag before every
//! `KVM_RUN`. Repeating the kick closes the race where a signal lands between the flag check
//! and the next `KVM_RUN`.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, OnceLock};
use std::time::{Duration, Instant};

use kvm_ioctls::VcpuExit;
use vmm_sys_util::signal::{register_signal_handler, Killable, SIGRTMIN};

use crate::backend::{Disposition, VmContext};
use crate::builder::{BootInfo, Machine};
use crate::devices::{BusOutcome, PortCount, UnhandledCounts};
use crate::end::EndReason;
use crate::stats::{read_stats, stats_fd, Stat};
use crate::vstate::vcpu::{exit_name, RegisterDump};

/// How often the watchdog re-sends the kick signal until the vCPU thread ends.
pub const KICK_INTERVAL: Duration = Duration::from_millis(10);

/// How to run.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunOptions {
    /// Stop the guest after this long (exit code 104).
    pub timeout: Option<Duration>,
}

/// Exits the run loop saw in userspace, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExitCounts {
    /// Port reads.
    pub io_in: u64,
    /// Port writes.
    pub io_out: u64,
    /// MMIO reads.
    pub mmio_read: u64,
    /// MMIO writes.
    pub mmio_write: u64,
    /// `KVM_RUN` interrupted by a signal (`EINTR` or `KVM_EXIT_INTR`).
    pub interrupted: u64,
}

/// Everything a run leaves behind.
pub struct RunOutcome {
    /// Why it ended.
    pub end: EndReason,
    /// The registers at the end.
    pub registers: Option<RegisterDump>,
    /// From the first `KVM_RUN` to the end.
    pub run_time: Duration,
    /// The vCPU's binary stats at the end, or why they are missing.
    pub kvm_stats: Result<Vec<Stat>, String>,
    /// Exits seen in userspace.
    pub exits: ExitCounts,
    /// Bytes the guest wrote to COM1.
    pub serial_bytes: u64,
    /// Of those, bytes stdout refused.
    pub serial_lost: u64,
    /// The last lines written to COM1.
    pub serial_tail: Vec<String>,
    /// Accesses nobody handled.
    pub unhandled: UnhandledCounts,
    /// Unhandled accesses per port (the first `MAX_TRACKED_PORTS` distinct ports).
    pub unhandled_ports: BTreeMap<u16, PortCount>,
    /// How the kernel was booted.
    pub boot: BootInfo,
    /// The backend's name.
    pub backend: &'static str,
    /// The backend's own counters (`Backend::stats`).
    pub backend_stats: Vec<(&'static str, u64)>,
}

extern "C" fn kick_handler(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {}

/// Installs the (empty) handler of the kick signal, once per process.
pub fn install_kick_handler() -> Result<(), String> {
    static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            register_signal_handler(SIGRTMIN(), kick_handler)
                .map_err(|e| format!("cannot install the vCPU kick signal handler: {e}"))
        })
        .clone()
}

/// Runs `machine` until the guest ends, something fails, or the timeout expires.
pub fn run<W: Write + Send + 'static>(machine: Machine<W>, opts: &RunOptions) -> RunOutcome {
    let stop = Arc::new(AtomicBool::new(false));
    let timeout = opts.timeout;
    if timeout.is_some() {
        if let Err(e) = install_kick_handler() {
            fatal(e);
        }
    }
    let (tx, rx) = mpsc::channel::<()>();
    let thread_stop = Arc::clone(&stop);
    let spawned = std::thread::Builder::new()
        .name("vcpu0".into())
        .spawn(move || {
            let outcome = vcpu_thread(machine, &thread_stop, timeout);
            let _ = tx.send(());
            outcome
        });
    let handle = match spawned {
        Ok(h) => h,
        Err(e) => fatal(format!("cannot start the vCPU thread: {e}")),
    };
    if let Some(t) = timeout {
        if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(t) {
            stop.store(true, Ordering::Release);
            loop {
                let _ = handle.kill(SIGRTMIN());
                match rx.recv_timeout(KICK_INTERVAL) {
                    Err(mpsc::RecvTimeoutError::Timeout) => continue,
                    _ => break,
                }
            }
        }
    }
    match handle.join() {
        Ok(outcome) => outcome,
        Err(_) => fatal("the vCPU thread panicked".into()),
    }
}

/// Ends the process for a failure of the loader itself (not of the guest) that leaves no
/// machine to report on: prints and exits with code 102.
fn fatal(msg: String) -> ! {
    eprintln!("afterburn-run: {msg}");
    std::process::exit(i32::from(crate::end::EXIT_INTERNAL_ERROR))
}

fn vcpu_thread<W: Write>(
    mut m: Machine<W>,
    stop: &AtomicBool,
    timeout: Option<Duration>,
) -> RunOutcome {
    let stats_file = stats_fd(m.vcpu.fd());
    let mut exits = ExitCounts::default();
    let start = Instant::now();
    let end = vcpu_loop(&mut m, stop, timeout, &mut exits);
    let run_time = start.elapsed();
    let output = m.backend.take_output();
    if !output.is_empty() {
        m.devices.serial.write_output(&output);
    }
    m.devices.serial.flush();
    let registers = m.vcpu.registers(&m.memory);
    let kvm_stats = stats_file
        .map_err(|e| e.to_string())
        .and_then(|f| read_stats(&f).map(|(_, s)| s).map_err(|e| e.to_string()));
    let console = m.devices.serial.console();
    RunOutcome {
        end,
        registers,
        run_time,
        kvm_stats,
        exits,
        serial_bytes: console.bytes,
        serial_lost: console.lost,
        serial_tail: console.tail.lines(),
        unhandled: m.devices.unhandled,
        unhandled_ports: std::mem::take(&mut m.devices.unhandled_ports),
        boot: m.boot.clone(),
        backend: m.backend.name(),
        backend_stats: m.backend.stats(),
    }
}

fn vcpu_loop<W: Write>(
    m: &mut Machine<W>,
    stop: &AtomicBool,
    timeout: Option<Duration>,
    exits: &mut ExitCounts,
) -> EndReason {
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    loop {
        if stop.load(Ordering::Acquire) {
            return EndReason::Timeout {
                after: timeout.unwrap_or_default(),
            };
        }
        match m.vcpu.fd_mut().run() {
            Ok(VcpuExit::IoOut(port, data)) => {
                exits.io_out += 1;
                buf.clear();
                buf.extend_from_slice(data);
                let mut ctx = VmContext {
                    memory: &m.memory,
                    vcpu: m.vcpu.fd_mut(),
                    protocol: m.boot.protocol,
                    entry: m.boot.entry,
                    vm: m.vm.fd(),
                    kernel: &[],
                };
                let disposition = m.backend.port_write(port, &buf, &mut ctx);
                let output = m.backend.take_output();
                if !output.is_empty() {
                    m.devices.serial.write_output(&output);
                }
                match disposition {
                    Disposition::Handled => {}
                    Disposition::End(reason) => return reason,
                    Disposition::NotMine => {
                        if let BusOutcome::GuestExit(status) = m.devices.pio_write(port, &buf) {
                            return EndReason::GuestExit { status };
                        }
                    }
                }
            }
            Ok(VcpuExit::IoIn(port, data)) => {
                exits.io_in += 1;
                m.devices.pio_read(port, data);
            }
            Ok(VcpuExit::MmioRead(addr, data)) => {
                exits.mmio_read += 1;
                m.devices.mmio_read(addr, data);
            }
            Ok(VcpuExit::MmioWrite(addr, data)) => {
                exits.mmio_write += 1;
                m.devices.mmio_write(addr, data);
            }
            Ok(VcpuExit::Intr) => exits.interrupted += 1,
            Ok(VcpuExit::Shutdown) => return EndReason::Shutdown,
            Ok(VcpuExit::SystemEvent(kind, _)) => return EndReason::SystemEvent { kind },
            Ok(VcpuExit::FailEntry(reason, _)) => return EndReason::FailEntry { reason },
            Ok(VcpuExit::InternalError) => {
                let (suberror, data) = m.vcpu.internal_error().unwrap_or((0, Vec::new()));
                return EndReason::InternalError { suberror, data };
            }
            Ok(other) => {
                return EndReason::Unhandled {
                    exit: exit_name(&other),
                }
            }
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                exits.interrupted += 1;
            }
            Err(e) => {
                return EndReason::RunFailed {
                    error: e.to_string(),
                }
            }
        }
    }
}
