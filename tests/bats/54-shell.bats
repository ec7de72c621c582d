#!/usr/bin/env bats
# ntm shell on a terminal (a pty driven by python3): completion of
# subcommands, options and known peers at every level, and Ctrl-C, which
# cancels the line at the prompt and stops a running command, never the
# shell. alice at dc1 has an agent with a tunnel to bob (dc2) and a shared
# key with carol (dc1).

load helpers

setup_file() {
	platform_up_cs
	platform_resolver_start "$(P)"
	alice_bob_up
	add_user carol 'carol-pw-1'
	login "$BATS_FILE_TMPDIR/carol" carol carol-pw-1 "$(dc1_url)" >/dev/null
	timeout 30 ntm -c "$(A)" tunnel ping -c 1 --timeout 20 bob.dc2.ntm.test >/dev/null
	timeout 30 ntm -c "$(A)" keys exchange carol.dc1.ntm.test >/dev/null
	write_driver
}

teardown_file() {
	agents_down
	platform_down
}

A() { echo "$BATS_FILE_TMPDIR/alice"; }
B() { echo "$BATS_FILE_TMPDIR/bob"; }


# The driver: `ntm -c PROFILE shell` on a pty; each step sends its text and
# waits (at most 10 s) for the expected text to appear after it; then
# "exit". Prints the transcript; exit 1 naming the step that did not come.
write_driver() {
	cat > "$BATS_FILE_TMPDIR/drive.py" <<'PY'
import json, os, pty, select, sys, time
prof, steps = sys.argv[1], json.loads(sys.argv[2])
pid, fd = pty.fork()
if pid == 0:
    os.execvp("ntm", ["ntm", "-c", prof, "shell"])
out = b""
def read_until(expect, secs, mark):
    global out
    end = time.time() + secs
    while time.time() < end:
        if expect is not None and expect.encode() in out[mark:]:
            return True
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            try:
                d = os.read(fd, 4096)
            except OSError:
                return False
            if not d:
                return False
            out += d
    return expect is None
ok = read_until("ntm> ", 10, 0)
for send, expect in steps:
    if not ok:
        break
    mark = len(out)
    os.write(fd, send.encode())
    ok = read_until(expect, 10, mark)
    if not ok:
        print("[drive: after %r, no %r]" % (send, expect))
if ok:
    os.write(fd, b"exit\n")
    read_until(None, 2, 0)
try:
    os.kill(pid, 9)
except ProcessLookupError:
    pass
os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors="replace").replace("\r", ""))
sys.exit(0 if ok else 1)
PY
}

# drive PROFILE STEP... : STEP is "SEND=>EXPECT" (\t, \n and ^C as written).
drive() {
	local prof=$1 s steps="["
	shift
	for s in "$@"; do
		steps+=$(jq -cn --arg a "${s%%=>*}" --arg b "${s#*=>}" \
		    '[($a | gsub("\\\\t"; "\t") | gsub("\\\\n"; "\n") | gsub("\\^C"; "\u0003")), $b]'),
	done
	steps="${steps%,}]"
	run timeout 60 python3 "$BATS_FILE_TMPDIR/drive.py" "$prof" "$steps"
}

@test "shell completes subcommands and the options that apply, at every level" {
	drive "$(A)" 'tunnel op\t=>tunnel open ' '^C=>ntm> ' \
	    'keys l\t=>keys list ' '^C=>ntm> ' \
	    'tunnel ping --in\t=>--interval ' '^C=>ntm> ' \
	    'help tunnel cl\t=>help tunnel close ' '^C=>ntm> ' \
	    'tu\t=>tunnel '
	assert_success
	# --interval applies to ping, --exec does not: ping's options only
	drive "$(A)" 'tunnel ping --\t\t=>--count' '^C=>ntm> '
	assert_success
	assert_output --partial --interval
	assert_output --partial --timeout
	refute_output --partial --exec
	refute_output --partial --local-port
}

@test "shell completes known peers: the agent's tunnels and the stored keys" {
	drive "$(A)" 'tunnel ping b\t=>bob.dc2.ntm.test ' '^C=>ntm> ' \
	    'keys show c\t=>carol.dc1.ntm.test ' '^C=>ntm> ' \
	    'send c\t=>carol.dc1.ntm.test ' '^C=>ntm> ' \
	    'fetch --from b\t=>bob.dc2.ntm.test '
	assert_success
}

@test "Ctrl-C cancels the line at the prompt; the shell still answers" {
	drive "$(A)" 'frobnicate^C=>ntm> ' 'status --offline\n=>user: alice' \
	    '^C=>ntm> ' '^C=>ntm> ' 'help\n=>exit status'
	assert_success
	refute_output --partial "unknown command 'frobnicate"
}

@test "Ctrl-C stops a running command (ping prints its summary), not the shell" {
	drive "$(A)" 'tunnel ping -c 100 -i 0.2 bob.dc2.ntm.test\n=>bytes from' \
	    '^C=>tunnel ping ---' 'status --offline\n=>user: alice'
	assert_success
	assert_output --regexp '[0-9]+ sent, [0-9]+ received'
}
