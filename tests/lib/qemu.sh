# SPDX-License-Identifier: GPL-2.0-or-later
#
# QEMU boot harness for the vm tier. Source it after test-lib.sh:
#
#	. "$TESTS_DIR/lib/qemu.sh"
#
# One disk, boot to a serial-console marker:
#	qemu_boot_disk FILE --firmware bios|uefi|uefi-secboot [--expect MARKER]
#		[--timeout S] [--snapshot] [--bus virtio|ahci|nvme|usb|scsi]
#		[--log LOG] [-- EXTRA_QEMU_ARGS...]
# returns 0 if MARKER (a fixed string; default "IMAGER-BOOT-OK") appeared on
# the serial console before the timeout (default $QEMU_TIMEOUT or 180 s: the
# machine is shared). The console log is LOG (default $TRASH/qemu.log).
#
# Several disks (appliance tests), each with a serial to find it in the guest
# (/sys/block/vdX/serial, SATA: device/vpd_pg80, NVMe: device/serial):
#	qemu_disks_reset
#	qemu_add_disk virtio appliance.img boot0 --snapshot --bootindex 0
#	qemu_add_disk ahci   target1.img  tgt-ahci
#	qemu_add_disk nvme   target2.img  tgt-nvme --4kn
#	qemu_add_disk usb    target3.img  tgt-usb
#	qemu_start --firmware uefi --log run.log [--kernel K --initrd I --append A] [-- ARGS...]
#	qemu_wait_for "IMAGER-READY" 180      # 0 once the marker is in the log
#	qemu_wait_exit 120                    # 0 once QEMU has exited by itself
#	qemu_stop                             # kills $QEMU_PID (only that PID)
#
# Machine: q35, TCG with -cpu max unless the host has real KVM
# (/sys/module/kvm_intel or kvm_amd; the nested kvm_pvm here breaks QEMU),
# 1 GiB (QEMU_MEM), no display, no monitor, no network, -no-reboot so a guest
# panic or reboot ends QEMU. OVMF runs from pflash with a fresh copy of the
# variable store per boot.

: "${TRASH:?qemu.sh: source tests/lib/test-lib.sh first}"

QEMU_BIN=${QEMU_BIN:-qemu-system-x86_64}
QEMU_OVMF_DIR=${QEMU_OVMF_DIR:-/usr/share/OVMF}
QEMU_DEFAULT_MARKER=IMAGER-BOOT-OK
QEMU_DISKS=()
QEMU_PID=
QEMU_LOG=
QEMU_ELAPSED=

_qemu_err() { echo "qemu.sh: $*" >&2; return 1; }

# qemu_accel_args: -accel/-cpu for this host (QEMU_ACCEL=tcg|kvm overrides)
qemu_accel_args() {
	local accel=${QEMU_ACCEL:-}
	if [ -z "$accel" ]; then
		accel=tcg
		if [ -w /dev/kvm ] && { [ -d /sys/module/kvm_intel ] || [ -d /sys/module/kvm_amd ]; }; then
			accel=kvm
		fi
	fi
	case $accel in
	kvm) echo "-accel kvm -cpu host" ;;
	*) echo "-accel tcg -cpu max" ;;
	esac
}

# qemu_firmware_args bios|uefi|uefi-secboot: firmware and machine arguments;
# UEFI variants copy the variable store into $TRASH
qemu_firmware_args() {
	local code vars copy
	case $1 in
	bios)
		echo "-machine q35"
		return 0
		;;
	uefi)
		code=$QEMU_OVMF_DIR/OVMF_CODE_4M.fd vars=$QEMU_OVMF_DIR/OVMF_VARS_4M.fd
		;;
	uefi-secboot)
		# Microsoft's keys enrolled; the secure pflash needs SMM
		code=$QEMU_OVMF_DIR/OVMF_CODE_4M.secboot.fd vars=$QEMU_OVMF_DIR/OVMF_VARS_4M.ms.fd
		;;
	*) _qemu_err "unknown firmware '$1' (bios, uefi, uefi-secboot)"; return 1 ;;
	esac
	[ -r "$code" ] && [ -r "$vars" ] || _qemu_err "missing $code or $vars (package ovmf)" || return 1
	copy=$(mktemp "$TRASH/.ovmf-vars.XXXXXX") || return 1
	cp "$vars" "$copy" || return 1
	if [ "$1" = uefi-secboot ]; then
		echo "-machine q35,smm=on -global driver=cfi.pflash01,property=secure,value=on"
	else
		echo "-machine q35"
	fi
	echo "-drive if=pflash,format=raw,unit=0,readonly=on,file=$code"
	echo "-drive if=pflash,format=raw,unit=1,file=$copy"
}

qemu_disks_reset() { QEMU_DISKS=(); }

# qemu_add_disk BUS FILE [SERIAL] [--snapshot] [--readonly] [--4kn] [--bootindex N]
# BUS: virtio (virtio-blk-pci), ahci (ide-hd on q35's AHCI, 6 ports), nvme,
# usb (usb-storage on one qemu-xhci), scsi (scsi-hd on one virtio-scsi-pci).
# --snapshot: writes go to a temporary overlay (for read-only inputs).
# --4kn: 4096-byte logical and physical sectors (not on ahci or usb).
qemu_add_disk() {
	[ $# -ge 2 ] || _qemu_err "usage: qemu_add_disk BUS FILE [SERIAL] [options]" || return 1
	local bus=$1 file=$2 serial= n drive dev opts= bootindex= fourk= ss
	shift 2
	if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then
		serial=$1
		shift
	fi
	while [ $# -gt 0 ]; do
		case $1 in
		--snapshot) opts+=",snapshot=on"; shift ;;
		--readonly) opts+=",readonly=on"; shift ;;
		--4kn) fourk=1; shift ;;
		--bootindex) bootindex=$2; shift 2 ;;
		*) _qemu_err "qemu_add_disk: unknown option '$1'"; return 1 ;;
		esac
	done
	[ -e "$file" ] || _qemu_err "qemu_add_disk: no such file '$file'" || return 1
	n=$(_qemu_count_disks)
	[ -n "$serial" ] || serial=disk$n
	drive="-drive file=$(realpath "$file"),format=raw,if=none,id=qd$n,cache=unsafe$opts"
	ss=
	[ -z "$fourk" ] || ss=",logical_block_size=4096,physical_block_size=4096"
	case $bus in
	virtio) dev="-device virtio-blk-pci,drive=qd$n,serial=$serial$ss" ;;
	ahci)
		[ -z "$fourk" ] || _qemu_err "ahci (ide-hd) has no 4096-byte sectors" || return 1
		local port
		port=$(_qemu_count_bus ide-hd)
		[ "$port" -lt 6 ] || _qemu_err "q35's AHCI has 6 ports" || return 1
		dev="-device ide-hd,drive=qd$n,bus=ide.$port,serial=$serial"
		;;
	nvme) dev="-device nvme,drive=qd$n,serial=$serial$ss" ;;
	usb)
		[ -z "$fourk" ] || _qemu_err "usb-storage has no 4096-byte sectors here" || return 1
		dev="-device usb-storage,bus=qxhci.0,drive=qd$n,serial=$serial,removable=on"
		;;
	scsi) dev="-device scsi-hd,bus=qscsi.0,drive=qd$n,serial=$serial$ss" ;;
	*) _qemu_err "unknown bus '$bus' (virtio ahci nvme usb scsi)"; return 1 ;;
	esac
	[ -z "$bootindex" ] || dev+=",bootindex=$bootindex"
	QEMU_DISKS+=("#$bus" "$drive" "$dev")
}

_qemu_count_disks() {
	local a n=0
	for a in "${QEMU_DISKS[@]}"; do
		case $a in -drive*) n=$((n + 1)) ;; esac
	done
	echo $n
}

_qemu_count_bus() {
	local a n=0
	for a in "${QEMU_DISKS[@]}"; do
		case $a in "-device $1,"*) n=$((n + 1)) ;; esac
	done
	echo $n
}

# _qemu_disk_args: the -drive/-device words of QEMU_DISKS, plus the
# controllers that usb and scsi disks need
_qemu_disk_args() {
	local a
	# controllers first: QEMU resolves bus= when it creates each device
	for a in "${QEMU_DISKS[@]}"; do
		[ "$a" = "#usb" ] && { echo "-device qemu-xhci,id=qxhci"; break; }
	done
	for a in "${QEMU_DISKS[@]}"; do
		[ "$a" = "#scsi" ] && { echo "-device virtio-scsi-pci,id=qscsi"; break; }
	done
	for a in "${QEMU_DISKS[@]}"; do
		case $a in "#"*) ;; *) echo "$a" ;; esac
	done
}

# qemu_start [--firmware F] [--log LOG] [--mem MIB] [--kernel K] [--initrd I]
#	[--append CMDLINE] [--serial-input] [-- EXTRA_QEMU_ARGS...]
# Starts QEMU in the background with the disks of qemu_add_disk; sets
# QEMU_PID (registered for cleanup) and QEMU_LOG (the serial console).
# --serial-input: the serial port also takes input, typed with qemu_send
# (QEMU's pipe backend on the FIFOs LOG.in and LOG.out; LOG stays the log).
qemu_start() {
	local firmware=bios log=$TRASH/qemu.log mem=${QEMU_MEM:-1024} kernel= initrd= append=
	local serial_input= serial
	local -a args extra=()
	while [ $# -gt 0 ]; do
		case $1 in
		--firmware) firmware=$2; shift 2 ;;
		--log) log=$2; shift 2 ;;
		--mem) mem=$2; shift 2 ;;
		--kernel) kernel=$2; shift 2 ;;
		--initrd) initrd=$2; shift 2 ;;
		--append) append=$2; shift 2 ;;
		--serial-input) serial_input=1; shift ;;
		--) shift; extra=("$@"); break ;;
		*) _qemu_err "qemu_start: unknown option '$1'"; return 1 ;;
		esac
	done
	command -v "$QEMU_BIN" >/dev/null || _qemu_err "$QEMU_BIN not found (package qemu-system-x86)" || return 1
	local fw accel disks
	fw=$(qemu_firmware_args "$firmware") || return 1
	accel=$(qemu_accel_args)
	disks=$(_qemu_disk_args)
	# each line of fw/disks is one option and its value (no spaces in paths
	# under $TRASH); word-split them on purpose
	# shellcheck disable=SC2206
	serial=(-serial "file:$log")
	if [ -n "$serial_input" ]; then
		rm -f "$log.in" "$log.out"
		mkfifo "$log.in" "$log.out" || return 1
		serial=(-chardev "pipe,id=qser,path=$log,logfile=$log" -serial chardev:qser)
	fi
	args=($accel $fw -m "$mem" -display none -monitor none "${serial[@]}"
		-no-reboot -nic none $disks)
	[ -z "$kernel" ] || args+=(-kernel "$kernel")
	[ -z "$initrd" ] || args+=(-initrd "$initrd")
	[ -z "$append" ] || args+=(-append "$append")
	: >"$log"
	echo "qemu: $QEMU_BIN ${args[*]} ${extra[*]}" >"$log.cmd"
	"$QEMU_BIN" "${args[@]}" "${extra[@]}" </dev/null >"$log.out" 2>&1 &
	QEMU_PID=$!
	QEMU_LOG=$log
	QEMU_START_NS=$(date +%s%N)
	register_pid "$QEMU_PID"
	QEMU_SERIAL_IN=
	if [ -n "$serial_input" ]; then
		# QEMU writes the console to LOG.out too: drain it (LOG has it all)
		cat "$log.out" >/dev/null &
		register_pid $!
		QEMU_SERIAL_IN=$log.in
	fi
}

# qemu_send TEXT: types TEXT and Enter on the serial console (qemu_start --serial-input)
qemu_send() {
	[ -n "${QEMU_SERIAL_IN:-}" ] || _qemu_err "qemu_send: start QEMU with --serial-input" || return 1
	printf '%s\r' "$1" >"$QEMU_SERIAL_IN"
}

# _qemu_alive: QEMU_PID still runs
_qemu_alive() { [ -n "$QEMU_PID" ] && kill -0 "$QEMU_PID" 2>/dev/null; }

_qemu_elapsed() { QEMU_ELAPSED=$(( ($(date +%s%N) - QEMU_START_NS) / 1000000 )); }

# qemu_wait_for MARKER [TIMEOUT_S]: 0 once MARKER (a fixed string) is in the
# serial log; 1 if QEMU exits first or the timeout passes (QEMU keeps running
# then: qemu_stop it). Sets QEMU_ELAPSED (ms since qemu_start).
qemu_wait_for() {
	local marker=$1 timeout=${2:-${QEMU_TIMEOUT:-180}} deadline
	deadline=$(($(date +%s) + timeout))
	while :; do
		if grep -aqF -- "$marker" "$QEMU_LOG"; then
			_qemu_elapsed
			return 0
		fi
		if ! _qemu_alive; then
			# the marker may have been written just before the exit
			grep -aqF -- "$marker" "$QEMU_LOG" && { _qemu_elapsed; return 0; }
			_qemu_elapsed
			echo "qemu: exited without '$marker' after ${QEMU_ELAPSED} ms" >&2
			return 1
		fi
		if [ "$(date +%s)" -ge "$deadline" ]; then
			_qemu_elapsed
			echo "qemu: no '$marker' within ${timeout} s" >&2
			return 1
		fi
		sleep 0.2
	done
}

# qemu_wait_exit [TIMEOUT_S]: 0 once QEMU has exited by itself (guest power
# off, or a panic with -no-reboot), 1 on timeout (QEMU left running)
qemu_wait_exit() {
	local timeout=${1:-${QEMU_TIMEOUT:-180}} deadline
	deadline=$(($(date +%s) + timeout))
	while _qemu_alive; do
		[ "$(date +%s)" -lt "$deadline" ] || { echo "qemu: still running after ${timeout} s" >&2; return 1; }
		sleep 0.2
	done
	wait "$QEMU_PID" 2>/dev/null || true
	return 0
}

# qemu_stop: end this QEMU (by its PID only)
qemu_stop() {
	_qemu_alive || return 0
	kill "$QEMU_PID" 2>/dev/null || true
	local i
	for i in $(seq 1 25); do
		_qemu_alive || break
		sleep 0.2
	done
	_qemu_alive && kill -9 "$QEMU_PID" 2>/dev/null
	wait "$QEMU_PID" 2>/dev/null || true
	return 0
}

# qemu_log_tail [N]: the last N lines of the console, for failure messages
qemu_log_tail() {
	echo "--- last ${1:-40} lines of $QEMU_LOG ---"
	tail -n "${1:-40}" "$QEMU_LOG" | tr -d '\033' | cut -c1-200
	[ ! -s "$QEMU_LOG.out" ] || { echo "--- qemu's stderr ---"; cat "$QEMU_LOG.out"; }
}

# qemu_boot_disk FILE --firmware bios|uefi|uefi-secboot [--expect MARKER]
#	[--timeout S] [--snapshot] [--bus BUS] [--log LOG] [-- EXTRA...]
# Boots FILE as the only disk, waits for MARKER, then gives the guest 30 s to
# power off before stopping QEMU. 0 if the marker appeared.
qemu_boot_disk() {
	local file= firmware= marker=$QEMU_DEFAULT_MARKER timeout=${QEMU_TIMEOUT:-180}
	local snapshot= bus=virtio log=$TRASH/qemu.log rc
	local -a extra=()
	while [ $# -gt 0 ]; do
		case $1 in
		--firmware) firmware=$2; shift 2 ;;
		--expect) marker=$2; shift 2 ;;
		--timeout) timeout=$2; shift 2 ;;
		--snapshot) snapshot=--snapshot; shift ;;
		--bus) bus=$2; shift 2 ;;
		--log) log=$2; shift 2 ;;
		--) shift; extra=("$@"); break ;;
		-*) _qemu_err "qemu_boot_disk: unknown option '$1'"; return 1 ;;
		*) [ -z "$file" ] || _qemu_err "qemu_boot_disk: one disk only" || return 1
		   file=$1; shift ;;
		esac
	done
	[ -n "$file" ] && [ -n "$firmware" ] ||
		_qemu_err "usage: qemu_boot_disk FILE --firmware bios|uefi [--expect M] [--timeout S] [--snapshot]" ||
		return 1
	qemu_disks_reset
	# shellcheck disable=SC2086
	qemu_add_disk "$bus" "$file" golden $snapshot --bootindex 0 || return 1
	qemu_start --firmware "$firmware" --log "$log" -- "${extra[@]}" || return 1
	rc=0
	qemu_wait_for "$marker" "$timeout" || rc=1
	if [ $rc -eq 0 ]; then
		echo "qemu: '$marker' after $((QEMU_ELAPSED / 1000)).$((QEMU_ELAPSED % 1000 / 100)) s ($firmware)" >&2
		qemu_wait_exit 30 || qemu_stop
	else
		qemu_stop
		qemu_log_tail >&2
	fi
	return $rc
}
