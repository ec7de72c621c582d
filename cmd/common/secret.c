/* secret.c - read passwords without echo and never from argv. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "common.h"

/* One line from fd into buf; strips "\n" / "\r\n". -1 on error or overlong. */
static int
read_line_fd(int fd, char *buf, size_t cap)
{
	size_t n = 0;
	char ch;
	ssize_t r;

	for (;;) {
		r = read(fd, &ch, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		if (ch == '\n')
			break;
		if (n + 1 >= cap) {
			ntm_wipe(buf, cap);
			return -2;
		}
		buf[n++] = ch;
	}
	if (r < 0)
		return -1;
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	buf[n] = '\0';
	return (int)n;
}

static int
prompt_noecho(const char *prompt, char *buf, size_t cap)
{
	struct termios old, noecho;
	int fd, n;

	if ((fd = open("/dev/tty", O_RDWR | O_CLOEXEC)) < 0)
		return -1;
	if (tcgetattr(fd, &old) < 0) {
		close(fd);
		return -1;
	}
	noecho = old;
	noecho.c_lflag &= ~(tcflag_t)ECHO;
	noecho.c_lflag |= ECHONL;
	if (write(fd, prompt, strlen(prompt)) < 0) {
		close(fd);
		return -1;
	}
	tcsetattr(fd, TCSAFLUSH, &noecho);
	n = read_line_fd(fd, buf, cap);
	tcsetattr(fd, TCSAFLUSH, &old);
	close(fd);
	return n;
}

int
read_secret(const char *prompt, const char *file, int confirm, char *buf, size_t cap)
{
	char again[512];
	int fd, n;

	if (file) {
		if (strcmp(file, "-") == 0)
			fd = STDIN_FILENO;
		else if ((fd = open(file, O_RDONLY | O_CLOEXEC)) < 0) {
			log_warn("%s", file);
			return -1;
		}
		n = read_line_fd(fd, buf, cap);
		if (fd != STDIN_FILENO)
			close(fd);
	} else if (isatty(STDIN_FILENO)) {
		n = prompt_noecho(prompt, buf, cap);
		if (n >= 0 && confirm) {
			int m = prompt_noecho("Again: ", again, sizeof(again));
			if (m != n || strcmp(again, buf) != 0) {
				ntm_wipe(again, sizeof(again));
				ntm_wipe(buf, cap);
				log_warnx("the two passwords differ");
				return -1;
			}
			ntm_wipe(again, sizeof(again));
		}
	} else
		n = read_line_fd(STDIN_FILENO, buf, cap);

	if (n == -2) {
		log_warnx("password longer than %zu bytes", cap - 1);
		return -1;
	}
	if (n < 0) {
		log_warnx("cannot read the password");
		return -1;
	}
	if (n == 0) {
		log_warnx("empty password");
		return -1;
	}
	return n;
}
