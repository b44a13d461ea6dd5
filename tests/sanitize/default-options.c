/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Sanitizer defaults compiled into the sanitized builds only (make
 * check-sanitize links this into $(O)/sanitize/imager and the unit tests;
 * the normal build never sees it). The host runs pass the same options in
 * SANITIZE_ENV (mk/fuzz.mk); inside the appliance's VMs (the vm tier) imager
 * runs without that environment, so these make it behave the same there:
 * leaks are reported, and every report aborts the process.
 *
 * The runtime reads these before the *_OPTIONS variables, which override
 * them option by option. It calls them before it is initialised: they must
 * not be instrumented.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define NOSAN __attribute__((no_sanitize("address", "undefined")))

/*
 * The suppression files, embedded as they are (the runtimes skip '#' lines),
 * because the VM has no copy of them: the assembler reads them at build
 * time, from SANITIZE_SUPP_DIR (mk/fuzz.mk makes this object depend on them).
 */
__asm__(".section .rodata\n"
	"sanitize_asan_supp:\n"
	".incbin \"" SANITIZE_SUPP_DIR "/asan.supp\"\n"
	".byte 0\n"
	"sanitize_lsan_supp:\n"
	".incbin \"" SANITIZE_SUPP_DIR "/lsan.supp\"\n"
	".byte 0\n"
	".previous\n");
/* hidden: defined in this object, addressed without the GOT */
extern const char sanitize_asan_supp[] __asm__("sanitize_asan_supp")
	__attribute__((visibility("hidden")));
extern const char sanitize_lsan_supp[] __asm__("sanitize_lsan_supp")
	__attribute__((visibility("hidden")));

/* the runtimes' hooks (weak in libasan and libubsan) */
const char *__asan_default_options(void);
const char *__asan_default_suppressions(void);
const char *__lsan_default_options(void);
const char *__lsan_default_suppressions(void);
const char *__ubsan_default_options(void);
void __sanitizer_report_error_summary(const char *summary);

/* keep in step with SANITIZE_ENV in mk/fuzz.mk */
NOSAN const char *__asan_default_options(void)
{
	return "detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1";
}

NOSAN const char *__asan_default_suppressions(void)
{
	return sanitize_asan_supp;
}

NOSAN const char *__lsan_default_options(void)
{
	return "print_suppressions=0";
}

NOSAN const char *__lsan_default_suppressions(void)
{
	return sanitize_lsan_supp;
}

/*
 * libubsan keeps its own flags: without abort_on_error a report exits 1, and
 * it prints no summary line (so no IMAGER-SANITIZER-REPORT) unless asked
 */
NOSAN const char *__ubsan_default_options(void)
{
	return "print_stacktrace=1:halt_on_error=1:abort_on_error=1:print_summary=1";
}

/* the appliance's /init sources this; it exists nowhere else */
#define APPLIANCE_CONF "/etc/imager/appliance.conf"
/*
 * KERN_CRIT: /init lowers the console log level to 3 (only 0-2 reach the
 * consoles), and every console, the serial one too, shows this
 */
#define SANITIZE_KMSG_PREFIX "<2>IMAGER-SANITIZER-REPORT "

/*
 * Called once per report (ASan, LSan, UBSan) with its "SUMMARY: ..." line,
 * which the runtime's own version prints to stderr. Inside the appliance the
 * line also goes to the kernel log, and so to the serial console (its
 * /dev/console is the screen): the runtime scripts discard imager's stderr in
 * places (2>/dev/null) and some exit statuses (|| true), and check-sanitize
 * fails on any IMAGER-SANITIZER-REPORT in a VM's serial log.
 */
NOSAN void __sanitizer_report_error_summary(const char *summary)
{
	char line[512];
	int fd, n;

	(void) !write(STDERR_FILENO, summary, strlen(summary));
	(void) !write(STDERR_FILENO, "\n", 1);
	if (access(APPLIANCE_CONF, F_OK) < 0)
		return;
	fd = open("/dev/kmsg", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	/* one write is one kernel log record; a longer summary is cut */
	n = snprintf(line, sizeof(line), SANITIZE_KMSG_PREFIX "%s\n", summary);
	if (n > 0)
		(void) !write(fd, line, (size_t) n < sizeof(line) ? (size_t) n : sizeof(line) - 1);
	(void) close(fd);
}
