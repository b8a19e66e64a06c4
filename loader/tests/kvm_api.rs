//! The thin KVM wrappers against real /dev/kvm (skipped loudly without it).

mod common;

use common::kvm_or_skip;
use kvm_ioctls::Kvm;
use loader::stats::{read_stats, stats_fd, StatType};

#[test]
fn vcpu_binary_stats_are_read_by_name() {
    if !kvm_or_skip("vcpu_binary_stats_are_read_by_name") {
        return;
    }
    let kvm = Kvm::new().unwrap();
    let vm = kvm.create_vm().unwrap();
    let vcpu = vm.create_vcpu(0).unwrap();
    let f = stats_fd(&vcpu).unwrap();
    let (id, stats) = read_stats(&f).unwrap();
    assert!(id.starts_with("kvm-") && id.ends_with("vcpu-0"), "{id}");
    let exits = stats
        .iter()
        .find(|s| s.name == "exits")
        .expect("an exits counter");
    assert_eq!(exits.stat_type(), StatType::Cumulative);
    assert_eq!(exits.values.len(), 1);
    assert!(stats.iter().any(|s| s.name == "halt_exits"));
    // Reading twice gives the same layout.
    let (_, again) = read_stats(&f).unwrap();
    let names: Vec<_> = stats.iter().map(|s| &s.name).collect();
    let names2: Vec<_> = again.iter().map(|s| &s.name).collect();
    assert_eq!(names, names2);
}

#[test]
fn vm_binary_stats_work_too() {
    if !kvm_or_skip("vm_binary_stats_work_too") {
        return;
    }
    let kvm = Kvm::new().unwrap();
    let vm = kvm.create_vm().unwrap();
    let (id, stats) = read_stats(&stats_fd(&vm).unwrap()).unwrap();
    assert!(id.starts_with("kvm-"), "{id}");
    assert!(!stats.is_empty());
}
