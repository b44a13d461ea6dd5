/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Disk selection hints (imager/select.h): the parser and the matcher, on made-up disks. */
#include <errno.h>

#include "imager/select.h"
#include "unit.h"

static struct blkdev disk_sata = {
	.node = (char *) "/dev/sda", .sysname = (char *) "sda",
	.size_bytes = UINT64_C(500107862016), /* a "500 GB" SSD */
	.model = (char *) "Samsung SSD 870 EVO 500GB               ",
	.serial = (char *) "S6PXNM0T123456", .wwn = (char *) "naa.5002538f41234567",
	.transport = (char *) "sata", .rotational = false,
};

static struct blkdev disk_virtio = {
	.node = (char *) "/dev/vdb", .sysname = (char *) "vdb",
	.size_bytes = UINT64_C(1) << 30,
	.serial = (char *) "tgt-1", .transport = (char *) "virtio", .rotational = true,
};

static bool match(const char *hints, const struct blkdev *d)
{
	struct select_hints h;
	bool m;

	if (select_hints_parse(hints, &h, NULL) < 0)
		UNIT_FAIL("'%s' did not parse", hints);
	m = select_hints_match(&h, d);
	select_hints_done(&h);
	return m;
}

static int parse_error(const char *hints, const char **ret_error)
{
	struct select_hints h;
	int r = select_hints_parse(hints, &h, ret_error);

	if (r >= 0)
		select_hints_done(&h);
	return r;
}

TEST(parse_all_keys)
{
	struct select_hints h;

	ASSERT_OK(select_hints_parse("serial=S1,wwn=naa.50,model=QEMU*,size=1G-2G,"
				     "transport=nvme,rotational=0",
				     &h, NULL));
	ASSERT_STREQ(h.serial, "S1");
	ASSERT_STREQ(h.wwn, "naa.50");
	ASSERT_STREQ(h.model, "QEMU*");
	ASSERT_STREQ(h.transport, "nvme");
	ASSERT_EQ_U64(h.size_min_bytes, UINT64_C(1) << 30);
	ASSERT_EQ_U64(h.size_max_bytes, UINT64_C(2) << 30);
	ASSERT_EQ_I64(h.rotational, 0);
	ASSERT_EQ_U64(h.n_keys, 6);
	select_hints_done(&h);
	ASSERT_TRUE(h.serial == NULL);
	ASSERT_EQ_I64(h.rotational, -1);
}

TEST(parse_defaults_when_absent)
{
	struct select_hints h;

	ASSERT_OK(select_hints_parse("serial=x", &h, NULL));
	ASSERT_TRUE(h.model == NULL && h.wwn == NULL && h.transport == NULL);
	ASSERT_EQ_U64(h.size_min_bytes, 0);
	ASSERT_EQ_U64(h.size_max_bytes, UINT64_MAX);
	ASSERT_EQ_I64(h.rotational, -1);
	ASSERT_EQ_U64(h.n_keys, 1);
	select_hints_done(&h);
}

TEST(parse_size_forms)
{
	struct select_hints h;

	ASSERT_OK(select_hints_parse("size=100G-", &h, NULL));
	ASSERT_EQ_U64(h.size_min_bytes, UINT64_C(100) << 30);
	ASSERT_EQ_U64(h.size_max_bytes, UINT64_MAX);
	select_hints_done(&h);

	ASSERT_OK(select_hints_parse("size=-2T", &h, NULL));
	ASSERT_EQ_U64(h.size_min_bytes, 0);
	ASSERT_EQ_U64(h.size_max_bytes, UINT64_C(2) << 40);
	select_hints_done(&h);

	ASSERT_OK(select_hints_parse("size=1073741824", &h, NULL));
	ASSERT_EQ_U64(h.size_min_bytes, UINT64_C(1073741824));
	ASSERT_EQ_U64(h.size_max_bytes, UINT64_C(1073741824));
	select_hints_done(&h);

	ASSERT_OK(select_hints_parse("size=512MiB-512MiB", &h, NULL));
	ASSERT_EQ_U64(h.size_min_bytes, UINT64_C(512) << 20);
	ASSERT_EQ_U64(h.size_max_bytes, UINT64_C(512) << 20);
	select_hints_done(&h);
}

TEST(parse_errors)
{
	const char *error = NULL;
	char big[SELECT_HINTS_MAX_BYTES + 16];

	ASSERT_ERR(parse_error("", &error), -EINVAL);
	ASSERT_STREQ(error, "no hints given");
	ASSERT_ERR(parse_error(",,,", NULL), -EINVAL);
	ASSERT_ERR(parse_error("serial", &error), -EINVAL);
	ASSERT_STREQ(error, "a hint is not KEY=VALUE");
	ASSERT_ERR(parse_error("colour=red", &error), -EINVAL);
	ASSERT_TRUE(strstr(error, "unknown key") != NULL);
	ASSERT_ERR(parse_error("Serial=x", NULL), -EINVAL); /* keys are lower case */
	ASSERT_ERR(parse_error("serial=a,serial=b", &error), -EINVAL);
	ASSERT_STREQ(error, "a key is given twice");
	ASSERT_ERR(parse_error("serial=", &error), -EINVAL);
	ASSERT_STREQ(error, "empty value");
	ASSERT_ERR(parse_error("size=-", NULL), -EINVAL);
	ASSERT_ERR(parse_error("size=2G-1G", NULL), -EINVAL);
	ASSERT_ERR(parse_error("size=1X", NULL), -EINVAL);
	ASSERT_ERR(parse_error("size=1G-2G-3G", NULL), -EINVAL);
	ASSERT_ERR(parse_error("size=-1G-", NULL), -EINVAL);
	ASSERT_ERR(parse_error("rotational=yes", &error), -EINVAL);
	ASSERT_STREQ(error, "rotational must be 0 or 1");
	ASSERT_ERR(parse_error("rotational=2", NULL), -EINVAL);
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	memcpy(big, "serial=", 7);
	ASSERT_ERR(parse_error(big, NULL), -E2BIG);
}

TEST(parse_value_keeps_equals_and_spaces)
{
	struct select_hints h;

	ASSERT_OK(select_hints_parse("serial=a=b,model=QEMU HARDDISK", &h, NULL));
	ASSERT_STREQ(h.serial, "a=b");
	ASSERT_STREQ(h.model, "QEMU HARDDISK");
	select_hints_done(&h);
}

TEST(match_serial_exact)
{
	ASSERT_TRUE(match("serial=S6PXNM0T123456", &disk_sata));
	ASSERT_TRUE(!match("serial=s6pxnm0t123456", &disk_sata)); /* case-sensitive */
	ASSERT_TRUE(!match("serial=S6PXNM0T12345", &disk_sata));  /* no prefix match */
	ASSERT_TRUE(match("serial=tgt-1", &disk_virtio));
}

TEST(match_model_substring_and_glob)
{
	ASSERT_TRUE(match("model=870 EVO", &disk_sata));
	ASSERT_TRUE(match("model=samsung", &disk_sata)); /* case-insensitive */
	ASSERT_TRUE(match("model=Samsung*500GB", &disk_sata)); /* glob over the stripped model */
	ASSERT_TRUE(!match("model=Samsung*", &disk_virtio));    /* no model: no match */
	ASSERT_TRUE(!match("model=SSD*", &disk_sata));          /* a glob anchors at both ends */
	ASSERT_TRUE(match("model=*SSD*", &disk_sata));
	ASSERT_TRUE(match("model=Samsung?SSD?870*", &disk_sata));
	ASSERT_TRUE(!match("model=Crucial", &disk_sata));
}

TEST(match_wwn_prefixes)
{
	ASSERT_TRUE(match("wwn=naa.5002538f41234567", &disk_sata));
	ASSERT_TRUE(match("wwn=0x5002538F41234567", &disk_sata));
	ASSERT_TRUE(match("wwn=5002538f41234567", &disk_sata));
	ASSERT_TRUE(!match("wwn=5002538f4123456", &disk_sata));
	ASSERT_TRUE(!match("wwn=5002538f41234567", &disk_virtio)); /* no WWN */
	ASSERT_TRUE(select_wwn_equal("eui.0025388b", "0x0025388B"));
	ASSERT_TRUE(!select_wwn_equal(NULL, "x"));
}

TEST(match_size_bounds_inclusive)
{
	ASSERT_TRUE(match("size=1G", &disk_virtio));
	ASSERT_TRUE(match("size=1G-1G", &disk_virtio));
	ASSERT_TRUE(match("size=1073741824-", &disk_virtio));
	ASSERT_TRUE(!match("size=1073741825-", &disk_virtio));
	ASSERT_TRUE(match("size=-1073741824", &disk_virtio));
	ASSERT_TRUE(!match("size=-1073741823", &disk_virtio));
	ASSERT_TRUE(match("size=400G-600G", &disk_sata));
	ASSERT_TRUE(!match("size=500G", &disk_sata)); /* binary units: 500 GiB is not 500 GB */
	ASSERT_TRUE(match("size=465G-466G", &disk_sata));
}

TEST(match_transport_and_rotational)
{
	ASSERT_TRUE(match("transport=sata", &disk_sata));
	ASSERT_TRUE(match("transport=SATA", &disk_sata));
	ASSERT_TRUE(!match("transport=usb", &disk_sata));
	ASSERT_TRUE(match("rotational=0", &disk_sata));
	ASSERT_TRUE(!match("rotational=1", &disk_sata));
	ASSERT_TRUE(match("rotational=1", &disk_virtio));
	struct blkdev unknown = { .node = (char *) "/dev/x", .size_bytes = 1 };
	ASSERT_TRUE(!match("transport=sata", &unknown));
}

TEST(match_all_must_hold)
{
	ASSERT_TRUE(match("transport=sata,rotational=0,size=400G-,model=EVO", &disk_sata));
	ASSERT_TRUE(!match("transport=sata,rotational=0,size=400G-,model=QVO", &disk_sata));
	ASSERT_TRUE(!match("serial=tgt-1,transport=nvme", &disk_virtio));
}
