# SPDX-License-Identifier: GPL-2.0-or-later
#
# common.sh: shared helpers of the appliance's /init, menu and jobs (POSIX sh
# for busybox ash; sourced, never run). busybox runs its own applets before
# $PATH, so e2fsprogs and util-linux tools are called by full path.
#
# State lives in $RUN (tmpfs) as small files, so a menu on each console and
# the shell command `imager-run` see the same view:
#	$RUN/env          IMAGER, DATA_DIR, DATA_PART, OWN_DISK (written by /init, sourced)
#	$RUN/job.lock/    held (mkdir) while a capture or flash runs
#	$RUN/log          everything /init printed
#	$W = $RUN/w.PID   each process's scratch files (disks.flat: `imager
#	                  disks --json` flattened by json.awk; select.err, ...)

# IMAGER_RUN_DIR and IMAGER_LIB_DIR let the loop tests run these scripts on
# the build machine (tests/loop/t2210); the appliance uses the defaults
RUN=${IMAGER_RUN_DIR:-/run/imager}
LIB=${IMAGER_LIB_DIR:-/usr/lib/imager}
DATA_LABEL='IMAGER-DATA'

say() { printf '%s\n' "$*"; }
warn() { printf 'imager: %s\n' "$*" >&2; }

# the imager binary (the build installs it; the path is not ours to choose)
find_imager() {
	for p in /usr/bin/imager /bin/imager /usr/sbin/imager /sbin/imager /usr/local/bin/imager; do
		[ -x "$p" ] && { echo "$p"; return 0; }
	done
	return 1
}

# now_cs: time since boot in centiseconds (/proc/uptime), for bounded waits
now_cs() {
	local up
	read -r up _ </proc/uptime
	up=${up%.*}${up#*.}
	while :; do
		case $up in 0?*) up=${up#0} ;; *) break ;; esac
	done
	echo "$up"
}

# fmt_cs CS: "12.34"
fmt_cs() { printf '%d.%02d' $(($1 / 100)) $(($1 % 100)); }

# human BYTES: binary units with one decimal, as `imager disks` prints them
human() {
	awk -v b="$1" 'BEGIN {
		if (b == "") { print "-"; exit }
		split("B KiB MiB GiB TiB PiB", u, " "); i = 1
		while (b >= 1024 && i < 6) { b /= 1024; i++ }
		if (i == 1) printf("%d B\n", b); else printf("%.1f %s\n", b, u[i])
	}'
}

# json_flat: stdin JSON -> stdout "PATH<TAB>VALUE" lines (json.awk)
json_flat() { awk -f "$LIB/json.awk"; }

# jval FLATFILE PATH: the value at PATH (empty for null or absent)
jval() { awk -F '\t' -v k="$2" '$1 == k { print $2; exit }' "$1"; }

# words LIST: a newline-separated list on one line, space-separated
words() { printf '%s\n' "$1" | tr '\n' ' ' | sed 's/ *$//'; }

# json_str STRING: STRING as a JSON string literal (with quotes); control
# characters become spaces
json_str() {
	printf '%s' "$1" | awk 'BEGIN { RS = "\001" } {
		gsub(/\\/, "\\\\"); gsub(/"/, "\\\""); gsub(/[\001-\037]/, " ")
		printf("\"%s\"", $0)
	} END { if (NR == 0) printf("\"\"") }'
}

# json_str_or_null STRING
json_str_or_null() { if [ -n "$1" ]; then json_str "$1"; else printf 'null'; fi; }

# load_env: the facts /init found ($RUN/env)
load_env() {
	[ -r "$RUN/env" ] && . "$RUN/env"
	: "${IMAGER:=$(find_imager)}"
	W=$RUN/w.$$
	mkdir -p "$W"
}

# --- disks -------------------------------------------------------------------

# disks_refresh: re-read every disk into $W/disks.flat (and .json)
disks_refresh() {
	"$IMAGER" disks --json >"$W/disks.json.tmp" 2>"$W/disks.err" || true
	json_flat <"$W/disks.json.tmp" >"$W/disks.flat.tmp" 2>>"$W/disks.err" || true
	mv "$W/disks.json.tmp" "$W/disks.json"
	mv "$W/disks.flat.tmp" "$W/disks.flat"
}

# disk_rows: one tab-separated line per disk from $W/disks.flat:
#	node size model serial transport content boot system_disk error
# "content" says what is on the disk in a few words.
disk_rows() {
	awk -F '\t' '
	function v(k) { return (k in val) ? val[k] : "" }
	{ val[$1] = $2 }
	END {
		n = v("disks#") + 0
		for (i = 0; i < n; i++) {
			p = "disks." i "."
			np = v(p "partitions#") + 0
			pt = v(p "pttype")
			if (pt == "") {
				fs = v(p "whole_disk.fstype")
				content = fs != "" ? fs " on the whole disk" : "blank (no partition table)"
			} else {
				content = pt ", " np " partition" (np == 1 ? "" : "s")
				sep = ": "
				for (k = 0; k < np; k++) {
					q = p "partitions." k "."
					fs = v(q "fstype"); lb = v(q "label")
					if (fs == "") continue
					content = content sep fs (lb != "" ? " \"" lb "\"" : "")
					sep = ", "
				}
			}
			model = v(p "model"); gsub(/ +$/, "", model)
			printf("%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", v(p "node"), v(p "size"),
			       model == "" ? "-" : model, v(p "serial") == "" ? "-" : v(p "serial"),
			       v(p "transport") == "" ? "-" : v(p "transport"), content,
			       v(p "boot.mode") == "" ? "none" : v(p "boot.mode"),
			       v(p "system_disk"), v(p "error"))
		}
	}' "$W/disks.flat"
}

# disk_field NODE FIELD: one field of NODE from $W/disks.flat (model, serial, size, ...)
disk_field() {
	awk -F '\t' -v node="$1" -v f="$2" '
	{ val[$1] = $2 }
	END {
		n = val["disks#"] + 0
		for (i = 0; i < n; i++)
			if (val["disks." i ".node"] == node) { print val["disks." i "." f]; exit }
	}' "$W/disks.flat"
}

# disk_describe NODE: "/dev/vdb (model QEMU HARDDISK, serial tgt-1, 2.0 GiB)"
disk_describe() {
	local model serial size
	model=$(disk_field "$1" model | sed 's/ *$//')
	serial=$(disk_field "$1" serial)
	size=$(disk_field "$1" size)
	printf '%s (model %s, serial %s, %s)\n' "$1" "${model:--}" "${serial:--}" "$(human "$size")"
}

# print_disks: the disk list as the menu and the boot screen show it
print_disks() {
	local node size model serial transport content boot sys err mark
	say "Disks:"
	if [ ! -s "$W/disks.flat" ] || [ "$(jval "$W/disks.flat" 'disks#')" = 0 ]; then
		say "  (no disks found)"
		return 0
	fi
	disk_rows | while IFS='	' read -r node size model serial transport content boot sys err; do
		mark=
		[ "$node" = "${OWN_DISK:-}" ] && mark="  [appliance medium]"
		[ "$sys" = true ] && mark="  [system disk]"
		printf '  %-13s %10s  %-7s model %s  serial %s%s\n' "$node" "$(human "$size")" \
			"$transport" "$model" "$serial" "$mark"
		printf '  %-13s %s; boots: %s\n' "" "$content" "$boot"
		[ -z "$err" ] || printf '  %-13s unreadable: %s\n' "" "$err"
	done
}

# --- data partition ----------------------------------------------------------

# find_data_partitions [SPEC]: "PARTNODE DISKNODE FSTYPE" for each partition
# that SPEC names: LABEL=X (default LABEL=IMAGER-DATA), PARTUUID=X, UUID=X,
# or a partition node
find_data_partitions() {
	awk -F '\t' -v spec="${1:-LABEL=$DATA_LABEL}" '
	{ val[$1] = $2 }
	END {
		key = "label"; want = spec
		if (spec ~ /^LABEL=/) { key = "label"; want = substr(spec, 7) }
		else if (spec ~ /^PARTUUID=/) { key = "partuuid"; want = toupper(substr(spec, 10)) }
		else if (spec ~ /^UUID=/) { key = "uuid"; want = tolower(substr(spec, 6)) }
		else if (spec ~ /^\//) key = "node"
		n = val["disks#"] + 0
		for (i = 0; i < n; i++) {
			np = val["disks." i ".partitions#"] + 0
			for (k = 0; k < np; k++) {
				q = "disks." i ".partitions." k "."
				have = val[q key]
				if (key == "partuuid") have = toupper(have)
				if (key == "uuid") have = tolower(have)
				if (have == want && val[q "node"] != "")
					print val[q "node"], val["disks." i ".node"], val[q "fstype"]
			}
		}
	}' "$W/disks.flat"
}

# own_disk_of DEV: true if DEV (a node or a link to it) is the appliance's own medium
is_own_disk() {
	[ -n "${OWN_DISK:-}" ] || return 1
	[ "$(readlink -f "$1" 2>/dev/null || echo "$1")" = "$OWN_DISK" ]
}

# --- images ------------------------------------------------------------------

# images_rows STORE: one line per image, oldest first:
#	NAME<TAB>CREATED<TAB>FAMILY<TAB>DISKS<TAB>USED<TAB>STATUS<TAB>STATE
# CREATED as `images list` prints it (ISO 8601 UTC, so it sorts); FAMILY is
# the image's family, or else its label family=NAME (how images captured
# before imager had families carry it), "-" if none; STATE is the lifecycle
# state (ACTIVE, DEPRECATED, ...; "-" from an imager without lifecycles).
images_rows() {
	local store=$1 name
	"$IMAGER" images list --json --store "$store" 2>/dev/null | json_flat >"$W/images.flat" ||
		return 0
	awk -F '\t' '
	{ val[$1] = $2 }
	function v(k) { return (k in val) ? val[k] : "" }
	END {
		n = v("images#") + 0
		for (i = 0; i < n; i++) {
			p = "images." i "."
			printf("%s\t%s\t%s\t%s\t%s\t%s\t%s\n", v(p "name"), v(p "created"),
			       v(p "family") == "" ? "-" : v(p "family"), v(p "disks"), v(p "used"),
			       v(p "status"), v(p "state") == "" ? "-" : v(p "state"))
		}
	}' "$W/images.flat" | while IFS='	' read -r name created fam ndisks used status state; do
		if [ "$fam" = - ]; then
			fam=$("$IMAGER" images describe "$name" --json --store "$store" 2>/dev/null |
				json_flat | awk -F '\t' '$1 ~ /^labels\.[0-9]+$/ && $2 ~ /^family=/ {
					print substr($2, 8); exit }')
		fi
		printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$created" "${fam:--}" "$ndisks" \
			"$used" "$status" "$state"
	done | sort -t '	' -k2,2 -k1,1
}

# newest_of_family STORE FAMILY: the newest complete image of FAMILY that is
# not deprecated (imager's lifecycle state ACTIVE, or no lifecycle at all)
newest_of_family() {
	images_rows "$1" | awk -F '\t' -v f="$2" '
		$3 == f && $6 == "READY" && ($7 == "ACTIVE" || $7 == "-") { name = $1 }
		END { if (name != "") print name }'
}

# --- reports and result markers ----------------------------------------------

# report_path ACTION: a new, unique report file name under $DATA_DIR/reports
report_path() {
	local base n=0 f
	base=$DATA_DIR/reports/$(date -u +%Y%m%dT%H%M%SZ)-$1
	f=$base.json
	while [ -e "$f" ]; do
		n=$((n + 1))
		f=$base-$n.json
	done
	: >"$f" && echo "$f"
}

# dmi FIELD: /sys/class/dmi/id/FIELD, trimmed, empty if unreadable
dmi() { sed 's/ *$//' "/sys/class/dmi/id/$1" 2>/dev/null; }

# write_sh_report FILE ACTION EXIT_CODE ERROR IMAGE STORE REQUEST...: a report
# for a run that ended before imager ran (a refusal), with the same fields as
# imager's --report plus "request" (the imager.* options of the run)
write_sh_report() {
	local file=$1 action=$2 code=$3 error=$4 image=$5 store=$6 first=1 kv
	shift 6
	[ -n "$file" ] || return 0
	{
		printf '{\n'
		printf '   "action": %s,\n' "$(json_str "$action")"
		printf '   "result": "error",\n'
		printf '   "exit_code": %d,\n' "$code"
		printf '   "error": %s,\n' "$(json_str "$error")"
		printf '   "started": %s,\n' "$(json_str "$(date -u +%Y-%m-%dT%H:%M:%SZ)")"
		printf '   "seconds": 0,\n'
		printf '   "tool_version": %s,\n' "$(json_str_or_null "$("$IMAGER" --version 2>/dev/null | sed 's/^imager //')")"
		printf '   "machine": {\n'
		printf '      "vendor": %s,\n' "$(json_str_or_null "$(dmi sys_vendor)")"
		printf '      "product": %s,\n' "$(json_str_or_null "$(dmi product_name)")"
		printf '      "serial": %s\n' "$(json_str_or_null "$(dmi product_serial)")"
		printf '   },\n'
		printf '   "store": %s,\n' "$(json_str_or_null "$store")"
		printf '   "image": {\n'
		printf '      "name": %s,\n' "$(json_str_or_null "$image")"
		printf '      "digest": null\n'
		printf '   },\n'
		printf '   "disks": [],\n'
		printf '   "request": {'
		for kv in "$@"; do
			[ -n "${kv#*=}" ] || continue
			[ $first = 1 ] && printf '\n' || printf ',\n'
			first=0
			printf '      %s: %s' "$(json_str "${kv%%=*}")" "$(json_str "${kv#*=}")"
		done
		[ $first = 1 ] && printf '}\n' || printf '\n   }\n'
		printf '}\n'
	} >"$file.tmp" && mv "$file.tmp" "$file"
}

# result_marker ok|error ACTION KEY=VALUE...: the one-line result on the console
result_marker() {
	local status=$1 action=$2 line kv
	shift 2
	line="IMAGER-RESULT $status action=$action"
	for kv in "$@"; do
		[ -n "${kv#*=}" ] || continue
		line="$line $kv"
	done
	say ""
	say "$line"
}
