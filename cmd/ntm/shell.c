/*
 * shell.c - ntm shell: a readline loop over the same command table, with
 * completion of command names and of the current command's options, and a
 * bounded history file in the state dir.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <readline/history.h>
#include <readline/readline.h>

#include "common.h"
#include "ntm-cli.h"

#define SHELL_PROMPT	"ntm> "
#define SHELL_WORDS_MAX	256

const struct cli_opt shell_opts[] = {
	CLI_OPT_HELP,
	CLI_OPT_END
};

static const char *const builtins[] = { "exit", "quit", NULL };

static void
free_words(char **w, int n)
{
	for (int i = 0; i < n; i++)
		free(w[i]);
	free(w);
}

/*
 * Splits s into words: blanks separate; '...' is literal; "..." keeps
 * backslash escapes of '"' and '\'; outside quotes a backslash escapes the
 * next character. New NULL-terminated array in *out. Returns the count, or
 * -1 on an unterminated quote (with partial set, the open word is kept).
 */
static int
split_words(const char *s, char ***out, int partial)
{
	char **w;
	char *cur;
	size_t len = strlen(s), k = 0;
	int n = 0, inword = 0;
	char quote = 0;

	*out = NULL;
	if ((w = calloc(SHELL_WORDS_MAX + 1, sizeof(*w))) == NULL ||
	    (cur = malloc(len + 1)) == NULL)
		fatal("malloc");
	for (const char *p = s; ; p++) {
		char c = *p;

		if (c == '\0' || (!quote && (c == ' ' || c == '\t'))) {
			if (c == '\0' && quote && !partial)
				goto bad;
			if (inword) {
				if (n >= SHELL_WORDS_MAX)
					goto bad;
				cur[k] = '\0';
				w[n++] = xstrdup(cur);
				k = 0;
				inword = 0;
			}
			if (c == '\0')
				break;
			continue;
		}
		inword = 1;
		if (quote == '\'') {
			if (c == '\'')
				quote = 0;
			else
				cur[k++] = c;
		} else if (quote == '"') {
			if (c == '"')
				quote = 0;
			else if (c == '\\' && (p[1] == '"' || p[1] == '\\'))
				cur[k++] = *++p;
			else
				cur[k++] = c;
		} else if (c == '\'' || c == '"')
			quote = c;
		else if (c == '\\' && p[1] != '\0')
			cur[k++] = *++p;
		else
			cur[k++] = c;
	}
	free(cur);
	*out = w;
	return n;
bad:
	free(cur);
	free_words(w, n);
	return -1;
}

/* ---- completion ---------------------------------------------------------- */

static const char **cands;	/* candidates for the current completion */
static size_t ncands;

static char *
cand_gen(const char *text, int state)
{
	static size_t idx, len;

	if (state == 0) {
		idx = 0;
		len = strlen(text);
	}
	while (idx < ncands) {
		const char *c = cands[idx++];
		if (strncmp(c, text, len) == 0)
			return xstrdup(c);
	}
	return NULL;
}

static void
cands_add(const char *s)
{
	const char **n = realloc(cands, (ncands + 1) * sizeof(*cands));

	if (n == NULL)
		fatal("realloc");
	cands = n;
	cands[ncands++] = s;
}

static void
cands_commands(int with_builtins)
{
	for (const struct cli_cmd *c = cli_commands; c->name; c++)
		cands_add(c->name);
	if (with_builtins)
		for (int i = 0; builtins[i]; i++)
			cands_add(builtins[i]);
}

static char **
shell_complete(const char *text, int start, int end)
{
	static char optbuf[64][48];
	const struct cli_cmd *cmd;
	const struct cli_opt *o;
	char *prefix, **w;
	int n;

	rl_attempted_completion_over = 1;	/* no filename fallback unless asked */
	ncands = 0;
	if ((prefix = strndup(rl_line_buffer, (size_t)start)) == NULL)
		return NULL;
	n = split_words(prefix, &w, 1);
	free(prefix);
	if (n < 0)
		return NULL;
	if (n == 0) {
		cands_commands(1);
		goto done;
	}
	if ((cmd = cli_find(w[0])) == NULL)
		goto done;
	/* the value of an option: files complete as files, the rest not at all */
	if (n >= 2 && strncmp(w[n - 1], "--", 2) == 0 && strchr(w[n - 1], '=') == NULL) {
		for (o = cmd->opts; o->name; o++)
			if (strcmp(o->name, w[n - 1] + 2) == 0 && o->arg) {
				if (strcmp(o->arg, "FILE") == 0)
					rl_attempted_completion_over = 0;
				goto done;
			}
	}
	if (n >= 2 && w[n - 1][0] == '-' && w[n - 1][1] != '-' && w[n - 1][1] != '\0' &&
	    w[n - 1][2] == '\0') {
		for (o = cmd->opts; o->name; o++)
			if (o->shortopt == w[n - 1][1] && o->arg)
				goto done;
	}
	if (strcmp(cmd->name, "help") == 0 && text[0] != '-')
		cands_commands(0);
	else {
		size_t i = 0;
		for (o = cmd->opts; o->name && i < 64; o++, i++) {
			snprintf(optbuf[i], sizeof(optbuf[i]), "--%s", o->name);
			cands_add(optbuf[i]);
		}
	}
done:
	if (n >= 0)
		free_words(w, n);
	if (ncands == 0)
		return NULL;
	return rl_completion_matches(text, cand_gen);
}

/* ---- the loop ------------------------------------------------------------ */

static int
run_line(struct cli *cli, const char *line, int *quit)
{
	char **w;
	int n, ret;

	if ((n = split_words(line, &w, 0)) < 0) {
		cli_err("shell", "unterminated quote or too many words");
		return EXIT_USAGE;
	}
	if (n == 0) {
		free_words(w, n);
		return -1;	/* nothing ran */
	}
	if (strcmp(w[0], "exit") == 0 || strcmp(w[0], "quit") == 0) {
		*quit = 1;
		ret = -1;
	} else if (strcmp(w[0], "shell") == 0) {
		cli_err("shell", "already in the shell");
		ret = EXIT_USAGE;
	} else
		ret = cli_dispatch(cli, n, w);
	free_words(w, n);
	fflush(stdout);
	return ret;
}

/* Without a terminal: plain lines from stdin, no prompt, no history. */
static int
shell_pipe(struct cli *cli)
{
	char *line = NULL;
	size_t cap = 0;
	int last = EXIT_OK, quit = 0, r;

	while (!quit && getline(&line, &cap, stdin) > 0) {
		line[strcspn(line, "\r\n")] = '\0';
		if ((r = run_line(cli, line, &quit)) >= 0)
			last = r;
	}
	free(line);
	return last;
}

int
shell_main(struct cli *cli, int argc, char **argv)
{
	const struct cli_cmd *cmd = cli_find("shell");
	struct cli_args args;
	char *hist = NULL, *line;
	int ch, fd, quit = 0, r, last = EXIT_OK, ret = EXIT_USAGE;

	cli_args_init(&args, cmd, argc, argv);
	while ((ch = cli_getopt(&args)) != 0) {
		switch (ch) {
		case 'h':
			cli_cmd_help(stdout, cmd);
			ret = EXIT_OK;
			goto out;
		default:
			goto out;
		}
	}
	if (args.npos > 0) {
		cli_err("shell", "unexpected argument '%s'", args.pos[0]);
		goto out;
	}
	if (cli->in_shell) {
		cli_err("shell", "already in the shell");
		goto out;
	}
	cli->in_shell = 1;
	if (!isatty(STDIN_FILENO)) {
		ret = shell_pipe(cli);
		cli->in_shell = 0;
		goto out;
	}

	if (cli_state_prepare(cli, "shell") == 0) {
		hist = cli_state_path(cli, "history");
		if ((fd = open(hist, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600)) >= 0) {
			(void)fchmod(fd, 0600);
			close(fd);
		} else {
			log_warn("%s", hist);
			free(hist);
			hist = NULL;
		}
	}
	rl_readline_name = "ntm";
	rl_attempted_completion_function = shell_complete;
	using_history();
	stifle_history(NTM_HISTORY_MAX);
	if (hist)
		(void)read_history(hist);

	while (!quit && (line = readline(SHELL_PROMPT)) != NULL) {
		const char *p = line + strspn(line, " \t");

		if (*p != '\0') {
			add_history(line);
			if (hist)
				(void)append_history(1, hist);
		}
		if ((r = run_line(cli, p, &quit)) >= 0)
			last = r;
		free(line);
	}
	if (!quit)
		putchar('\n');	/* EOF: end the prompt's line */
	if (hist) {
		(void)history_truncate_file(hist, NTM_HISTORY_MAX);
		(void)chmod(hist, 0600);
	}
	clear_history();
	cli->in_shell = 0;
	ret = last;
out:
	free(hist);
	free(cands);
	cands = NULL;
	ncands = 0;
	cli_args_free(&args);
	return ret;
}
