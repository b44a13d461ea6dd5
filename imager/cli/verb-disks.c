/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "cli.h"
#include "util/log.h"

int verb_disks(int argc, char *argv[])
{
	return log_error_errno(-ENOSYS, "not yet");
}
