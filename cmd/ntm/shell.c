/*
 * shell.c - ntm shell: a readline loop over the same command table, with
 * completion of command names, subcommands, the options that apply and
 * known peers (the agent's tunnels, the stored end-to-end keys), and a
 * bounded history file in the state dir.
 *
 * On a terminal each command runs in a child process, as in sh: Ctrl-C
 * stops the command, not the shell; at the prompt it cancels the line.
 */
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <readline/history.h>
#include <readline/readline.h>

#include "common.h"
#include "ntm-cli.h"
#include "agent.h"
#include "xcli.h"

#define SHELL_PROMPT	"ntm> "
#define SHELL_WORDS_MAX	256

static const struct cmd_opt shell_opts[] = {
	CLI_OPT_HELP,
	CLI_OPT_END
};

static const char *const builtins[] = { "exit", "quit", NULL };
static struct cli *shell_cli;	/* for completion: the command table, peer lookups */

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
	for (const struct cmd_entry *const *c = shell_cli->cmds; *c; c++)
		cands_add((*c)->name);
	if (with_builtins)
		for (int i = 0; builtins[i]; i++)
			cands_add(builtins[i]);
}

static void
cands_subs(const struct cmd_entry *cmd)
{
	for (const struct cmd_entry *const *s = cmd->subs; s && *s; s++)
		cands_add((*s)->name);
}

/* The options of cmd that apply to sub (all of them when sub is NULL). */
static void
cands_opts(const struct cmd_entry *cmd, const struct cmd_entry *sub)
{
	static char optbuf[64][48];
	size_t i = 0;

	for (const struct cmd_opt *o = cmd->opts; o->name && i < 64; o++) {
		if (!cmd_sub_takes(sub, o->name))
			continue;
		snprintf(optbuf[i], sizeof(optbuf[i]), "--%s", o->name);
		cands_add(optbuf[i++]);
	}
}

/* Known peers, new strings, kept until the next completion. */
static char **peers;
static size_t npeers;

static void
peer_add(const char *name)
{
	char **n;

	for (size_t i = 0; i < npeers; i++)
		if (strcmp(peers[i], name) == 0)
			return;
	if ((n = realloc(peers, (npeers + 1) * sizeof(*peers))) == NULL)
		fatal("realloc");
	peers = n;
	peers[npeers++] = xstrdup(name);
}

static int
peer_of_key(const struct xkey *k, void *arg)
{
	(void)arg;
	peer_add(k->peer);
	return 0;
}

static void
peers_free(void)
{
	for (size_t i = 0; i < npeers; i++)
		free(peers[i]);
	free(peers);
	peers = NULL;
	npeers = 0;
}

/* The peers the agent has tunnels with and those we share keys with. */
static void
cands_peers(const struct cli *cli)
{
	json_t *r, *t;
	size_t i;

	peers_free();
	if ((r = ctl_call(cli, json_pack("{s:s}", "cmd", "list"), 1000)) != NULL) {
		json_array_foreach(json_object_get(r, "tunnels"), i, t)
			if (json_is_string(json_object_get(t, "peer")))
				peer_add(json_string_value(json_object_get(t, "peer")));
		json_decref(r);
	}
	(void)xkey_each(cli, peer_of_key, NULL);
	for (i = 0; i < npeers; i++)
		cands_add(peers[i]);
}

/* Does option word w of cmd take the next word as its value? */
static int
takes_value(const struct cmd_entry *cmd, const char *w)
{
	const struct cmd_opt *o = cmd_opt_word(cmd, w);

	return o && o->arg != NULL;
}


static char **
shell_complete(const char *text, int start, int end)
{
	const struct cmd_entry *cmd, *sub = NULL, *e;
	const struct cmd_opt *o;
	const char *subname = NULL;
	char *prefix, **w;
	int n, i, npos = 0;

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
	if ((cmd = cmd_find(shell_cli->cmds, w[0])) == NULL)
		goto done;
	/* the value of an option: files and peers complete, the rest not at all */
	if (n >= 2 && takes_value(cmd, w[n - 1])) {
		o = cmd_opt_word(cmd, w[n - 1]);
		if (o->type == CMD_FILE)
			rl_attempted_completion_over = 0;
		else if (o->type == CMD_PEER)
			cands_peers(shell_cli);
		goto done;
	}
	/* the operands so far, options and their values aside */
	for (i = 1; i < n; i++) {
		if (w[i][0] == '-' && w[i][1] != '\0') {
			if (takes_value(cmd, w[i]))
				i++;
			continue;
		}
		if (npos++ == 0 && cmd->subs)
			subname = w[i];
	}
	if (subname)
		sub = cmd_find(cmd->subs, subname);
	if (text[0] == '-') {
		cands_opts(cmd, sub);
		goto done;
	}
	if (strcmp(cmd->name, "help") == 0) {
		const struct cmd_entry *of = npos == 1 ? cmd_find(shell_cli->cmds, w[n - 1]) : NULL;

		if (npos == 0)
			cands_commands(0);
		else if (of)
			cands_subs(of);
		goto done;
	}
	if (cmd->subs && npos == 0) {
		cands_subs(cmd);
		goto done;
	}
	/* the operands the entry says are peers (or files) */
	e = cmd->subs ? sub : cmd;
	if (e && ((e->operands & CMD_OPERAND_PEERS) ||
	    ((e->operands & CMD_OPERAND_PEER) && npos - (cmd->subs != NULL) == 0)))
		cands_peers(shell_cli);
	if (e && (e->operands & CMD_OPERAND_FILE))
		rl_attempted_completion_over = 0;	/* the last operand is a file */
done:
	free_words(w, n);
	if (ncands == 0)
		return NULL;
	return rl_completion_matches(text, cand_gen);
}

/* ---- the loop ------------------------------------------------------------ */

static volatile sig_atomic_t shell_sigint;

static void
on_shell_sigint(int sig)
{
	(void)sig;
	shell_sigint = 1;
}

/* Ctrl-C at the prompt: drop the line being typed, give a fresh prompt. */
static void
cancel_line(void)
{
	rl_free_line_state();
	rl_replace_line("", 0);
	rl_point = rl_end = 0;
	fputs("^C", rl_outstream ? rl_outstream : stdout);
	rl_crlf();
	rl_on_new_line();
	rl_redisplay();
}

/*
 * Readline's input: SIGINT stays blocked while readline runs and is let in
 * only inside ppoll, so a Ctrl-C is seen however it falls (during a
 * redisplay, between two keys) and never ends the shell.
 */
static sigset_t rl_waitmask;

static int
shell_getc(FILE *in)
{
	unsigned char ch;

	for (;;) {
		struct pollfd p = { .fd = fileno(in), .events = POLLIN };
		ssize_t r;

		if (shell_sigint) {
			shell_sigint = 0;
			cancel_line();
		}
		if (ppoll(&p, 1, NULL, &rl_waitmask) < 0) {
			if (errno == EINTR)
				continue;
			return EOF;
		}
		if ((r = read(p.fd, &ch, 1)) == 1)
			return ch;
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		return EOF;
	}
}

/* Runs the command in a child, as sh does, so Ctrl-C (which the terminal
 * sends to the whole foreground group) ends it and the shell goes on. */
static int
run_child(struct cli *cli, int n, char **w)
{
	int status;
	pid_t pid;

	fflush(NULL);
	if ((pid = fork()) < 0) {
		cli_err("shell", "cannot run '%s': %s", w[0], strerror(errno));
		return EXIT_FAIL;
	}
	if (pid == 0) {
		int ret;

		signal(SIGINT, SIG_DFL);
		ret = cli_dispatch(cli, n, w);
		fflush(NULL);
		_exit(ret);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return EXIT_FAIL;
	shell_sigint = 0;	/* that Ctrl-C was the command's */
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status) && WTERMSIG(status) == SIGINT)
		putchar('\n');
	return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

static int
run_line(struct cli *cli, const char *line, int *quit, int fork_cmd)
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
	} else if (fork_cmd)
		ret = run_child(cli, n, w);
	else
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
		if ((r = run_line(cli, line, &quit, 0)) >= 0)
			last = r;
	}
	free(line);
	return last;
}

static int
shell_exec(void *ctx, struct cmd_call *c)
{
	struct cli *cli = ctx;
	struct sigaction sa, old_sa;
	sigset_t intmask;
	char *hist = NULL, *line;
	int fd, quit = 0, r, last = EXIT_OK, ret = EXIT_USAGE;

	(void)c;
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
	shell_cli = cli;
	/* Ctrl-C: our handler and our input function (shell_getc), not
	 * readline's handler, which would end the shell. */
	rl_catch_signals = 0;
	rl_getc_function = shell_getc;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_shell_sigint;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old_sa);
	sigemptyset(&intmask);
	sigaddset(&intmask, SIGINT);
	using_history();
	stifle_history(NTM_HISTORY_MAX);
	if (hist)
		(void)read_history(hist);

	for (;;) {
		const char *p;

		if (quit)
			break;
		sigprocmask(SIG_BLOCK, &intmask, &rl_waitmask);
		sigdelset(&rl_waitmask, SIGINT);
		shell_sigint = 0;
		line = readline(SHELL_PROMPT);
		sigprocmask(SIG_UNBLOCK, &intmask, NULL);
		if (line == NULL)
			break;
		p = line + strspn(line, " \t");

		if (*p != '\0') {
			add_history(line);
			if (hist)
				(void)append_history(1, hist);
		}
		if ((r = run_line(cli, p, &quit, 1)) >= 0)
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
	sigaction(SIGINT, &old_sa, NULL);
	rl_getc_function = rl_getc;
	cli->in_shell = 0;
	ret = last;
out:
	free(hist);
	free(cands);
	cands = NULL;
	ncands = 0;
	peers_free();
	return ret;
}

const struct cmd_entry shell_entry = {
	.name = "shell",
	.summary = "interactive shell with completion and history",
	.usage = "",
	.opts = shell_opts,
	.max = 0,
	.exec = shell_exec,
};
