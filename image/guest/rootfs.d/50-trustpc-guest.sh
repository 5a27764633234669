#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Build-time hook (image/trustpc-image runs it with ROOTFS = the rootfs tree, after /var moved to
# /usr/share/factory/var): installs the device life cycle (docs/IMAGE.md "Device life cycle").
#   - /usr/lib/trustpc/trustpc-firstboot + trustpc-firstboot.service (enabled)
#   - trustpcd.service.d/trustpc-image.conf
#   - /etc/hosts -> /var/lib/trustpc/hosts (the first boot adds the fleet server's address; the
#     factory /var has the plain localhost file)
#   - systemd-pcrphase*.service masked: PCR 11 stays what the UKI's sections made it, so the
#     value the build predicted (pcr11.json, no phase) is the one in PCR 11 both when the initrd
#     unseals the disk and when trustpcd attests
#   - with TRUSTPC_IMAGE_TEST_SESSION=1 only: user 'employee' with a logind session and a console
#     printer of logind's Lock signals (tests/vm/test-vm-device.sh); the bench's systemd-cryptenroll
#     unit (bench/bench-image-unlock.sh; idle unless bench-unlock.conf is on the ESP)
set -euo pipefail
: "${ROOTFS:?ROOTFS must name the rootfs tree}"
G=$(cd "$(dirname "$0")/.." && pwd)
R=$ROOTFS
U=$R/usr/lib/systemd/system

install -D -m 0755 "$G/trustpc-firstboot" "$R/usr/lib/trustpc/trustpc-firstboot"
install -D -m 0644 "$G/trustpc-firstboot.service" "$U/trustpc-firstboot.service"
install -D -m 0644 "$G/trustpcd-image.conf" "$U/trustpcd.service.d/trustpc-image.conf"
chroot "$R" systemctl enable trustpc-firstboot.service >/dev/null 2>&1

for f in mkfs.ext4 cryptsetup trustpcd trustpc-disk ip; do
	chroot "$R" sh -c "command -v $f" >/dev/null || {
		echo "50-trustpc-guest: $f is not in the image (the first boot needs it: e2fsprogs, cryptsetup-bin, iproute2)" >&2
		exit 1
	}
done

factory=$R/usr/share/factory/var
[[ -d $factory ]] || factory=$R/var
install -d -m 0755 "$factory/lib/trustpc" "$factory/lib/trustpc-corporate"
cp "$R/etc/hosts" "$factory/lib/trustpc/hosts"
chmod 0644 "$factory/lib/trustpc/hosts"
ln -sf ../var/lib/trustpc/hosts "$R/etc/hosts"

for u in systemd-pcrphase.service systemd-pcrphase-sysinit.service systemd-pcrphase-initrd.service; do
	ln -sf /dev/null "$R/etc/systemd/system/$u"
done

if [[ "${TRUSTPC_IMAGE_TEST_SESSION:-0}" == 1 ]]; then
	echo "50-trustpc-guest: TEST image: user employee with a logind session, Lock signals on the console" >&2
	install -D -m 0644 /dev/stdin "$R/usr/lib/sysusers.d/trustpc-test.conf" <<-'EOT'
		u employee - "trustpc test session" /nonexistent /usr/sbin/nologin
	EOT
	systemd-sysusers --root="$R" >/dev/null
	install -D -m 0755 "$G/test/trustpc-test-lockwatch" "$R/usr/lib/trustpc/trustpc-test-lockwatch"
	for s in trustpc-test-session.service trustpc-test-lockwatch.service; do
		install -D -m 0644 "$G/test/$s" "$U/$s"
		chroot "$R" systemctl enable "$s" >/dev/null 2>&1
	done
	# bench/bench-image-unlock.sh: systemd's own TPM2 token enrolled next to ours (the unit runs
	# only when the initrd's bench hook, image/guest/test/initrd.d, found bench-unlock.conf on the ESP).
	chroot "$R" sh -c 'command -v systemd-cryptenroll' >/dev/null || {
		echo "50-trustpc-guest: systemd-cryptenroll is not in the image (package systemd)" >&2
		exit 1
	}
	install -D -m 0755 "$G/test/trustpc-bench-enroll" "$R/usr/lib/trustpc/trustpc-bench-enroll"
	install -D -m 0644 "$G/test/trustpc-bench-enroll.service" "$U/trustpc-bench-enroll.service"
	chroot "$R" systemctl enable trustpc-bench-enroll.service >/dev/null 2>&1
fi
