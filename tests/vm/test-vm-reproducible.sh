#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Two builds of the image from the same sources, binaries, debootstrap tarball and
# SOURCE_DATE_EPOCH (the first build's, from its manifest) are bit-identical, except the
# Authenticode signature of the UKI: sbsign stamps its signing time into it. So the unsigned UKI,
# the root squashfs, the verity tree and root hash, the initrd, pcr11.json are compared as files;
# the signed UKI after `sbattach --remove`; the disk partition by partition (the ESP with the UKI's
# signature bytes cut out: the one place the two disks may differ). docs/IMAGE.md "Reproducible".
set -euo pipefail
source "$TRUSTPC_SOURCE_ROOT/tests/vm/lib-vm.sh"
vm_require
require_cmd sbattach mcopy cmp
vm_image vm-image
A=$VM_IMAGE_DIR
epoch=$(grep -oE 'source_date_epoch=[0-9]+' "$A/manifest" | cut -d= -f2 || true)
[[ -n "$epoch" ]] || { not_ok "the first build's manifest names its SOURCE_DATE_EPOCH" "$(cat "$A/manifest")"; exit 1; }
B=$TRUSTPC_TEST_TMP/second
t0=$(date +%s)
if ! SOURCE_DATE_EPOCH=$epoch "$TRUSTPC_SOURCE_ROOT/image/trustpc-image" build --out "$B" \
	--build-root "$TRUSTPC_BUILD_ROOT" --cache "${TRUSTPC_IMAGE_CACHE:-/var/cache/trustpc-image}" \
	>"$TRUSTPC_TEST_TMP/build.log" 2>&1; then
	not_ok "the second build" "$(tail -n 30 "$TRUSTPC_TEST_TMP/build.log")"
	exit 1
fi
echo "# second build: $(($(date +%s) - t0)) s"

same() { # same FILE-A FILE-B NAME
	if cmp -s "$1" "$2"; then ok "$3"; else not_ok "$3" "$(cmp "$1" "$2" 2>&1; cmp -l "$1" "$2" | wc -l) bytes differ"; fi
}
for f in roothash pcr11.json work/root.sqfs work/root.verity work/initrd.img work/vmlinuz work/cmdline work/uki-unsigned.efi; do
	same "$A/$f" "$B/$f" "identical: $f"
done
for x in A B; do
	cp "${!x}/uki.efi" "$TRUSTPC_TEST_TMP/uki-$x.efi"
	sbattach --remove "$TRUSTPC_TEST_TMP/uki-$x.efi" 2>/dev/null
done
same "$TRUSTPC_TEST_TMP/uki-A.efi" "$TRUSTPC_TEST_TMP/uki-B.efi" "identical: uki.efi without its signature"
if cmp -s "$A/uki.efi" "$B/uki.efi"; then
	echo "# uki.efi identical even with its signature"
else
	echo "# uki.efi differs in its signature only ($(cmp -l "$A/uki.efi" "$B/uki.efi" | wc -l) bytes: sbsign's signing time)"
fi

# The disks: the GPT and every partition but the ESP byte for byte; the ESP with the byte ranges of
# the signed UKI's certificate table (and the PE checksum, which covers it) taken from A's copy.
# The GPT: the first MiB (protective MBR, header, entries) and the backup at the end.
sectors=$(($(stat -c %s "$A/trustpc.img") / 512))
for x in A B; do
	dd if="${!x}/trustpc.img" of="$TRUSTPC_TEST_TMP/gpt-$x" bs=512 count=2048 status=none
	dd if="${!x}/trustpc.img" bs=512 skip=$((sectors - 33)) count=33 status=none >>"$TRUSTPC_TEST_TMP/gpt-$x"
done
same "$TRUSTPC_TEST_TMP/gpt-A" "$TRUSTPC_TEST_TMP/gpt-B" "identical: the partition table (primary and backup GPT)"
parts=$(sfdisk --json "$A/trustpc.img" | jq -r '.partitiontable.partitions[] | "\(.name) \(.start) \(.size)"')
while read -r name start size; do
	for x in A B; do
		dd if="${!x}/trustpc.img" of="$TRUSTPC_TEST_TMP/$name-$x.part" bs=512 skip="$start" count="$size" \
			conv=sparse status=none
	done
	if [[ "$name" == esp ]]; then
		for x in A B; do
			mcopy -n -i "$TRUSTPC_TEST_TMP/esp-$x.part" ::/EFI/BOOT/BOOTX64.EFI "$TRUSTPC_TEST_TMP/esp-uki-$x.efi"
			sbattach --remove "$TRUSTPC_TEST_TMP/esp-uki-$x.efi" 2>/dev/null
		done
		same "$TRUSTPC_TEST_TMP/esp-uki-A.efi" "$TRUSTPC_TEST_TMP/esp-uki-B.efi" "identical: the ESP's UKI without its signature"
		same "$TRUSTPC_TEST_TMP/uki-A.efi" "$TRUSTPC_TEST_TMP/esp-uki-A.efi" "the ESP's UKI is the built one"
		# Everything else in the ESP (FAT, directories, times): each signed UKI cut out where it
		# lies (contiguous in a fresh FAT), the rest compared.
		out=$(python3 - "$TRUSTPC_TEST_TMP/esp-A.part" "$A/uki.efi" "$TRUSTPC_TEST_TMP/esp-B.part" "$B/uki.efi" <<-'PY'
			import sys
			rest = []
			for part, uki in ((sys.argv[1], sys.argv[2]), (sys.argv[3], sys.argv[4])):
			    p, u = open(part, "rb").read(), open(uki, "rb").read()
			    off = p.find(u)
			    if off < 0:
			        sys.exit("the signed UKI %s is not in one piece in %s" % (uki, part))
			    rest.append((off, p[:off] + p[off + len(u):]))
			print("same" if rest[0] == rest[1] else "differ (UKI at %d and %d)" % (rest[0][0], rest[1][0]))
		PY
		) || out="error: $out"
		assert_eq same "$out" "identical: the ESP apart from the signed UKI" || true
	else
		same "$TRUSTPC_TEST_TMP/$name-A.part" "$TRUSTPC_TEST_TMP/$name-B.part" "identical: partition $name"
	fi
	rm -f "$TRUSTPC_TEST_TMP/$name-"[AB].part
done <<<"$parts"
test_done
