# SPDX-License-Identifier: GPL-2.0-or-later
#
# json.awk: flattens a JSON document (as `imager ... --json` prints it) into
# one line per scalar, "PATH<TAB>VALUE", for the appliance's sh scripts
# (busybox has no jq). PATH joins object keys and array indexes with dots:
#
#	{"disks":[{"node":"/dev/vda","size":1073741824,"by_id":[]}]}
# gives
#	disks#	1
#	disks.0.node	/dev/vda
#	disks.0.size	1073741824
#	disks.0.by_id#	0
#
# "PATH#" is the length of the array at PATH. Strings are unescaped (a
# \uXXXX outside ASCII becomes '?'; tabs and newlines become spaces, so every
# value is one line); true and false stay words; null is an empty value.
# Malformed input ends with a message on stderr and exit status 1.

{ doc = doc $0 "\n" }

END {
	n = length(doc)
	i = 1
	ws()
	if (i > n)
		exit 0
	value("")
	ws()
	if (i <= n)
		fail("trailing characters")
	exit bad
}

function fail(what) {
	if (!bad)
		printf("json.awk: %s at byte %d\n", what, i) > "/dev/stderr"
	bad = 1
	i = n + 1
}

function ws() {
	while (i <= n && index(" \t\r\n", substr(doc, i, 1)))
		i++
}

function join(path, key) {
	return path == "" ? key : path "." key
}

function value(path,    c, start, v) {
	ws()
	c = substr(doc, i, 1)
	if (c == "{")
		object(path)
	else if (c == "[")
		array(path)
	else if (c == "\"") {
		v = str()
		if (!bad)
			print path "\t" v
	}
	else {
		start = i
		while (i <= n && !index(",]} \t\r\n", substr(doc, i, 1)))
			i++
		v = substr(doc, start, i - start)
		if (v == "null")
			v = ""
		else if (v != "true" && v != "false" && v !~ /^-?[0-9][0-9.eE+-]*$/)
			fail("bad literal '" v "'")
		if (!bad)
			print path "\t" v
	}
}

function object(path,    key) {
	i++ # {
	ws()
	if (substr(doc, i, 1) == "}") {
		i++
		return
	}
	while (i <= n) {
		ws()
		if (substr(doc, i, 1) != "\"")
			return fail("expected a key")
		key = str()
		ws()
		if (substr(doc, i, 1) != ":")
			return fail("expected ':'")
		i++
		value(join(path, key))
		ws()
		if (substr(doc, i, 1) == ",") {
			i++
			continue
		}
		if (substr(doc, i, 1) == "}") {
			i++
			return
		}
		return fail("expected ',' or '}'")
	}
}

function array(path,    k) {
	i++ # [
	k = 0
	ws()
	if (substr(doc, i, 1) == "]") {
		i++
		print path "#\t0"
		return
	}
	while (i <= n) {
		value(join(path, k))
		k++
		ws()
		if (substr(doc, i, 1) == ",") {
			i++
			continue
		}
		if (substr(doc, i, 1) == "]") {
			i++
			print path "#\t" k
			return
		}
		return fail("expected ',' or ']'")
	}
}

function str(    out, c, e, code) {
	i++ # opening quote
	out = ""
	while (i <= n) {
		c = substr(doc, i, 1)
		if (c == "\"") {
			i++
			return out
		}
		if (c == "\\") {
			e = substr(doc, i + 1, 1)
			i += 2
			if (e == "n" || e == "t" || e == "r" || e == "b" || e == "f")
				out = out " "
			else if (e == "u") {
				code = hexval(substr(doc, i, 4))
				i += 4
				out = out ((code >= 32 && code < 127) ? sprintf("%c", code) : "?")
			} else
				out = out e # \" \\ \/
			continue
		}
		if (c == "\t" || c == "\n")
			c = " "
		out = out c
		i++
	}
	fail("unterminated string")
	return out
}

function hexval(h,    k, d, v) {
	v = 0
	h = tolower(h)
	for (k = 1; k <= length(h); k++) {
		d = index("0123456789abcdef", substr(h, k, 1))
		if (!d)
			return -1
		v = v * 16 + d - 1
	}
	return v
}
