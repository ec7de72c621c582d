# fish completion for ntm(1). Keep in step with `ntm help --commands`: the
# lines of each command and subcommand ("__ntm_using CMD [SUB]") offer
# exactly the options listed on its line (scripts/docs-check.sh checks).

set -l ntm_commands login logout status up down register netcheck tunnel keys send fetch shell help

# The words of the line before the cursor, from the command on (the
# program and its own options, -c DIR, left out).
function __ntm_words
    set -l t (commandline -opc)
    set -e t[1]
    while set -q t[1]
        switch $t[1]
            case -c
                set -e t[1]
            case '-*'
            case '*'
                printf '%s\n' $t
                return
        end
        set -e t[1]
    end
end

# The subcommands of command $argv[1].
function __ntm_subs
    switch $argv[1]
        case tunnel
            echo ping open listen list close forward
        case keys
            echo exchange list show rotate forget
    end
end

# __ntm_using CMD [SUB]: the line is at CMD, and at its subcommand SUB, or
# (without SUB) at none yet.
function __ntm_using
    set -l w (__ntm_words)
    test "$w[1]" = "$argv[1]"; or return 1
    set -l subs (string split ' ' -- (__ntm_subs $argv[1]))
    set -l sub
    for x in $w[2..-1]
        if contains -- $x $subs
            set sub $x
            break
        end
    end
    test "$sub" = "$argv[2]"
end

# __ntm_operand CMD SUB N: at CMD SUB ('' for none) with N operands after
# it so far (option values aside): the next word is operand N.
function __ntm_operand
    __ntm_using $argv[1] $argv[2]; or return 1
    set -l valued -c --count -i --interval --udp --exec --local-port --wait --timeout \
        -L --local -R --remote --remove --app --service --item --notify --ttl --status
    set -l w (__ntm_words)
    set -e w[1]
    if test -n "$argv[2]"
        while set -q w[1]; and test "$w[1]" != "$argv[2]"
            set -e w[1]
        end
        set -e w[1]
    end
    set -l n 0
    set -l skip 0
    for x in $w
        if test $skip = 1
            set skip 0
        else if string match -q -- '-*' $x
            contains -- $x $valued; and set skip 1
        else
            set n (math $n + 1)
        end
    end
    test $n = $argv[3]
end

# The peers the agent has tunnels with and those we share end-to-end keys
# with, in the profile of a -c DIR given before the command.
function __ntm_peers
    set -l t (commandline -opc)
    set -e t[1]
    set -l prof
    while set -q t[1]
        switch $t[1]
            case -c
                set -q t[2]; and set prof -c (string replace -r '^~' $HOME -- $t[2])
                set -e t[1]
            case '-*'
            case '*'
                break
        end
        set -e t[1]
    end
    begin
        ntm $prof tunnel list --json
        ntm $prof keys list --json
    end 2>/dev/null | string match -ar '"peer":"[^"]*"' | string replace -r '^"peer":"(.*)"$' '$1' |
        string match -v -- - | sort -u
end

complete -c ntm -f
# global options (before the command)
complete -c ntm -n "not __fish_seen_subcommand_from $ntm_commands" -s c -r -a '(__fish_complete_directories)' -d 'use DIR as config and state dir'
complete -c ntm -n "not __fish_seen_subcommand_from $ntm_commands" -s v -d 'more verbose'
complete -c ntm -n "not __fish_seen_subcommand_from $ntm_commands" -s h -l help -d 'show the help and exit'
complete -c ntm -n "not __fish_seen_subcommand_from $ntm_commands" -s V -l version -d 'show the version and exit'

# commands
complete -c ntm -n "not __fish_seen_subcommand_from $ntm_commands" -a login -d 'log in at a DC and save the session'
complete -c ntm -n "not __fish_seen_subcommand_from $ntm_commands" -a logout -d 'end the session at the DC and forget it'
complete -c ntm -n "not __fish_seen_subcommand_from $ntm_commands" -a status -d 'show the session and whether the DC still holds it'
complete -c ntm -n "not __fish_seen_subcommand_from $ntm_commands" -a up -d 'start the agent: register with the DC, hold tunnels'
complete -c ntm -n "not __fish_seen_subcommand_from $ntm_commands" -a down -d 'stop the agent'
complete -c ntm -n "not __fish_seen_subcommand_from $ntm_commands" -a register -d 'register with the DC once and show what it saw'
complete -c ntm -n "not __fish_seen_subcommand_from $ntm_commands" -a netcheck -d 'probe the DC and the relay: NAT kind, reflexive addresses, round trips'
complete -c ntm -n "not __fish_seen_subcommand_from $ntm_commands" -a tunnel -d 'tunnels to peers: ping, open, listen, list, close, forward'
complete -c ntm -n "not __fish_seen_subcommand_from $ntm_commands" -a keys -d 'end-to-end keys with peers: exchange, list, show, rotate, forget'
complete -c ntm -n "not __fish_seen_subcommand_from $ntm_commands" -a send -d 'send a file end to end encrypted through the cache server'
complete -c ntm -n "not __fish_seen_subcommand_from $ntm_commands" -a fetch -d 'fetch, decrypt and confirm what peers sent'
complete -c ntm -n "not __fish_seen_subcommand_from $ntm_commands" -a shell -d 'interactive shell with completion and history'
complete -c ntm -n "not __fish_seen_subcommand_from $ntm_commands" -a help -d 'show help for ntm or one command'

# login
complete -c ntm -n "__ntm_using login" -s u -l user -x -d 'account name'
complete -c ntm -n "__ntm_using login" -l password-file -r -F -d 'read the password from FILE'
complete -c ntm -n "__ntm_using login" -l ca -r -F -d 'CA bundle the DC certificate must chain to'
complete -c ntm -n "__ntm_using login" -l device -x -d 'device id'
complete -c ntm -n "__ntm_using login" -l push -x -d 'https URL the DC notifies when a direction waits'
complete -c ntm -n "__ntm_using login" -l renew -d 'log in again without the password, proving the device key'
complete -c ntm -n "__ntm_using login" -l timeout -x -d 'give up after SEC seconds (1..300)'
complete -c ntm -n "__ntm_using login" -l json -d 'print one JSON object'
complete -c ntm -n "__ntm_using login" -s h -l help -d 'show the help and exit'

# logout
complete -c ntm -n "__ntm_using logout" -l timeout -x -d 'give up after SEC seconds (1..300)'
complete -c ntm -n "__ntm_using logout" -l json -d 'print one JSON object'
complete -c ntm -n "__ntm_using logout" -s h -l help -d 'show the help and exit'

# status
complete -c ntm -n "__ntm_using status" -l offline -d 'do not ask the DC'
complete -c ntm -n "__ntm_using status" -l metrics -d 'print the agent counters in the Prometheus text format'
complete -c ntm -n "__ntm_using status" -l timeout -x -d 'give up after SEC seconds (1..300)'
complete -c ntm -n "__ntm_using status" -l json -d 'print one JSON object'
complete -c ntm -n "__ntm_using status" -s h -l help -d 'show the help and exit'

# up
complete -c ntm -n "__ntm_using up" -s d -l foreground -d 'stay in the foreground'
complete -c ntm -n "__ntm_using up" -l json -d 'print one JSON object'
complete -c ntm -n "__ntm_using up" -l log -r -F -d 'the agent log file'
complete -c ntm -n "__ntm_using up" -l port -x -d 'UDP port of the agent'
complete -c ntm -n "__ntm_using up" -l keepalive -x -d 'register every SEC seconds'
complete -c ntm -n "__ntm_using up" -l direct-retry -x -a off -d 'try the direct path again after SEC seconds'
complete -c ntm -n "__ntm_using up" -l dc-udp -x -d 'the DC UDP address ADDR:PORT'
complete -c ntm -n "__ntm_using up" -l socks5 -x -a off -d 'serve SOCKS5 on this loopback ADDR:PORT (off: none)'
complete -c ntm -n "__ntm_using up" -l tun -d 'TUN mode: the vIPs on a kernel interface (root)'
complete -c ntm -n "__ntm_using up" -l allow -x -a 'icmp all' -d 'TUN mode: let peers in (PORT, PORT/tcp, PORT/udp, icmp, all; PEER:RULE)'
complete -c ntm -n "__ntm_using up" -l accept -x -d 'only this peer may open tunnels here (FQDN or *.DOMAIN)'
complete -c ntm -n "__ntm_using up" -l resolver -x -d 'DNS resolver ADDR:PORT'
complete -c ntm -n "__ntm_using up" -l timeout -x -d 'wait SEC seconds for the first registration'
complete -c ntm -n "__ntm_using up" -s h -l help -d 'show the help and exit'

# down
complete -c ntm -n "__ntm_using down" -l json -d 'print one JSON object'
complete -c ntm -n "__ntm_using down" -l timeout -x -d 'wait at most SEC seconds'
complete -c ntm -n "__ntm_using down" -s h -l help -d 'show the help and exit'

# register
complete -c ntm -n "__ntm_using register" -l json -d 'print one JSON object'
complete -c ntm -n "__ntm_using register" -l dc-udp -x -d 'the DC UDP address ADDR:PORT'
complete -c ntm -n "__ntm_using register" -l resolver -x -d 'DNS resolver ADDR:PORT'
complete -c ntm -n "__ntm_using register" -l timeout -x -d 'give up after SEC seconds (1..300)'
complete -c ntm -n "__ntm_using register" -s h -l help -d 'show the help and exit'

# netcheck
complete -c ntm -n "__ntm_using netcheck" -l json -d 'print one JSON object'
complete -c ntm -n "__ntm_using netcheck" -l dc-udp -x -d 'the DC UDP address ADDR:PORT'
complete -c ntm -n "__ntm_using netcheck" -l resolver -x -d 'DNS resolver ADDR:PORT'
complete -c ntm -n "__ntm_using netcheck" -l timeout -x -d 'give up after SEC seconds (1..300, default 3)'
complete -c ntm -n "__ntm_using netcheck" -s h -l help -d 'show the help and exit'

# tunnel (no subcommand yet: all its options)
complete -c ntm -n "__ntm_using tunnel" -a 'ping open listen list close forward'
complete -c ntm -n "__ntm_using tunnel" -s c -l count -x -d 'ping: requests; listen: datagrams'
complete -c ntm -n "__ntm_using tunnel" -s i -l interval -x -d 'seconds between pings'
complete -c ntm -n "__ntm_using tunnel" -s 6 -l ipv6 -d 'use the IPv6 vIPs (an IPv6 vIP as PEER does too)'
complete -c ntm -n "__ntm_using tunnel" -l udp -x -d 'datagrams: the UDP port'
complete -c ntm -n "__ntm_using tunnel" -l exec -x -a '(__fish_complete_command)' -d 'streams: run CMD on the stream'
complete -c ntm -n "__ntm_using tunnel" -l local-port -x -d 'our UDP source port'
complete -c ntm -n "__ntm_using tunnel" -l wait -x -d 'seconds to print replies after input ends'
complete -c ntm -n "__ntm_using tunnel" -l timeout -x -d 'give up if the tunnel is not up in SEC seconds'
complete -c ntm -n "__ntm_using tunnel" -s L -l local -x -d 'forward: [BIND:]LPORT:PEER:RPORT'
complete -c ntm -n "__ntm_using tunnel" -s R -l remote -x -d 'forward: RPORT:HOST:PORT'
complete -c ntm -n "__ntm_using tunnel" -l remove -x -d 'forward: remove forward ID'
complete -c ntm -n "__ntm_using tunnel" -l json -d 'print one JSON object'
complete -c ntm -n "__ntm_using tunnel" -s h -l help -d 'show the help and exit'

# tunnel ping PEER
complete -c ntm -n "__ntm_operand tunnel ping 0" -a '(__ntm_peers)'
complete -c ntm -n "__ntm_using tunnel ping" -s c -l count -x -d 'send N echo requests'
complete -c ntm -n "__ntm_using tunnel ping" -s i -l interval -x -d 'seconds between requests'
complete -c ntm -n "__ntm_using tunnel ping" -s 6 -l ipv6 -d 'use the IPv6 vIPs'
complete -c ntm -n "__ntm_using tunnel ping" -l timeout -x -d 'give up if the tunnel is not up in SEC seconds'
complete -c ntm -n "__ntm_using tunnel ping" -l json -d 'print one JSON object'
complete -c ntm -n "__ntm_using tunnel ping" -s h -l help -d 'show the help and exit'

# tunnel open PEER PORT
complete -c ntm -n "__ntm_operand tunnel open 0" -a '(__ntm_peers)'
complete -c ntm -n "__ntm_using tunnel open" -s 6 -l ipv6 -d 'use the IPv6 vIPs'
complete -c ntm -n "__ntm_using tunnel open" -l udp -x -d 'datagrams to the peer\'s UDP port'
complete -c ntm -n "__ntm_using tunnel open" -l exec -x -a '(__fish_complete_command)' -d 'run CMD on the stream'
complete -c ntm -n "__ntm_using tunnel open" -l local-port -x -d 'our UDP source port'
complete -c ntm -n "__ntm_using tunnel open" -l wait -x -d 'seconds to print replies after input ends'
complete -c ntm -n "__ntm_using tunnel open" -l timeout -x -d 'give up if the tunnel is not up in SEC seconds'
complete -c ntm -n "__ntm_using tunnel open" -l json -d 'print a JSON summary on stderr'
complete -c ntm -n "__ntm_using tunnel open" -s h -l help -d 'show the help and exit'

# tunnel listen PORT
complete -c ntm -n "__ntm_using tunnel listen" -l udp -x -d 'datagrams on our UDP port'
complete -c ntm -n "__ntm_using tunnel listen" -s c -l count -x -d 'exit after N datagrams'
complete -c ntm -n "__ntm_using tunnel listen" -l exec -x -a '(__fish_complete_command)' -d 'run CMD on the stream'
complete -c ntm -n "__ntm_using tunnel listen" -l json -d 'print a JSON summary on stderr'
complete -c ntm -n "__ntm_using tunnel listen" -s h -l help -d 'show the help and exit'

# tunnel list
complete -c ntm -n "__ntm_using tunnel list" -l json -d 'print one JSON object'
complete -c ntm -n "__ntm_using tunnel list" -s h -l help -d 'show the help and exit'

# tunnel close PEER
complete -c ntm -n "__ntm_operand tunnel close 0" -a '(__ntm_peers)'
complete -c ntm -n "__ntm_using tunnel close" -l json -d 'print one JSON object'
complete -c ntm -n "__ntm_using tunnel close" -s h -l help -d 'show the help and exit'

# tunnel forward
complete -c ntm -n "__ntm_using tunnel forward" -s L -l local -x -d '[BIND:]LPORT:PEER:RPORT'
complete -c ntm -n "__ntm_using tunnel forward" -s R -l remote -x -d 'RPORT:HOST:PORT'
complete -c ntm -n "__ntm_using tunnel forward" -l remove -x -d 'remove forward ID'
complete -c ntm -n "__ntm_using tunnel forward" -s 6 -l ipv6 -d 'use the IPv6 vIPs'
complete -c ntm -n "__ntm_using tunnel forward" -l json -d 'print one JSON object'
complete -c ntm -n "__ntm_using tunnel forward" -s h -l help -d 'show the help and exit'

# keys (no subcommand yet: all its options)
complete -c ntm -n "__ntm_using keys" -a 'exchange list show rotate forget'
complete -c ntm -n "__ntm_using keys" -l timeout -x -d 'give up after SEC seconds (1..300)'
complete -c ntm -n "__ntm_using keys" -l json -d 'print one JSON object'
complete -c ntm -n "__ntm_using keys" -s h -l help -d 'show the help and exit'

# keys exchange PEER
complete -c ntm -n "__ntm_operand keys exchange 0" -a '(__ntm_peers)'
complete -c ntm -n "__ntm_using keys exchange" -l timeout -x -d 'give up after SEC seconds (1..300)'
complete -c ntm -n "__ntm_using keys exchange" -l json -d 'print one JSON object'
complete -c ntm -n "__ntm_using keys exchange" -s h -l help -d 'show the help and exit'

# keys list
complete -c ntm -n "__ntm_using keys list" -l json -d 'print one JSON object'
complete -c ntm -n "__ntm_using keys list" -s h -l help -d 'show the help and exit'

# keys show PEER
complete -c ntm -n "__ntm_operand keys show 0" -a '(__ntm_peers)'
complete -c ntm -n "__ntm_using keys show" -l json -d 'print one JSON object'
complete -c ntm -n "__ntm_using keys show" -s h -l help -d 'show the help and exit'

# keys rotate PEER
complete -c ntm -n "__ntm_operand keys rotate 0" -a '(__ntm_peers)'
complete -c ntm -n "__ntm_using keys rotate" -l timeout -x -d 'give up after SEC seconds (1..300)'
complete -c ntm -n "__ntm_using keys rotate" -l json -d 'print one JSON object'
complete -c ntm -n "__ntm_using keys rotate" -s h -l help -d 'show the help and exit'

# keys forget PEER
complete -c ntm -n "__ntm_operand keys forget 0" -a '(__ntm_peers)'
complete -c ntm -n "__ntm_using keys forget" -l json -d 'print one JSON object'
complete -c ntm -n "__ntm_using keys forget" -s h -l help -d 'show the help and exit'

# send PEER FILE...
complete -c ntm -n "__ntm_operand send '' 0" -a '(__ntm_peers)'
complete -c ntm -n "__ntm_using send; and not __ntm_operand send '' 0" -F
complete -c ntm -n "__ntm_using send" -l app -x -d 'application ID'
complete -c ntm -n "__ntm_using send" -l service -x -d 'service ID'
complete -c ntm -n "__ntm_using send" -l item -x -d 'service item ID'
complete -c ntm -n "__ntm_using send" -l notify -x -d 'notification message (servers see it)'
complete -c ntm -n "__ntm_using send" -l ttl -x -d 'keep the object SEC seconds at the CS'
complete -c ntm -n "__ntm_using send" -l status -x -d 'show the delivery of object ID'
complete -c ntm -n "__ntm_using send" -l timeout -x -d 'give up after SEC seconds (1..300)'
complete -c ntm -n "__ntm_using send" -l progress -d 'show rate and time left even off a terminal'
complete -c ntm -n "__ntm_using send" -l no-progress -d 'show no progress'
complete -c ntm -n "__ntm_using send" -l json -d 'print one JSON object'
complete -c ntm -n "__ntm_using send" -s h -l help -d 'show the help and exit'

# fetch
complete -c ntm -n "__ntm_using fetch" -l from -x -a '(__ntm_peers)' -d 'only what PEER sent'
complete -c ntm -n "__ntm_using fetch" -l wait -d 'wait until something arrives'
complete -c ntm -n "__ntm_using fetch" -s o -l output -r -a '(__fish_complete_directories)' -d 'write into DIR, or - for stdout'
complete -c ntm -n "__ntm_using fetch" -l discard -x -d 'drop cache entry ID without fetching it'
complete -c ntm -n "__ntm_using fetch" -l timeout -x -d 'give up after SEC seconds (1..300)'
complete -c ntm -n "__ntm_using fetch" -l progress -d 'show rate and time left even off a terminal'
complete -c ntm -n "__ntm_using fetch" -l no-progress -d 'show no progress'
complete -c ntm -n "__ntm_using fetch" -l json -d 'print one JSON object'
complete -c ntm -n "__ntm_using fetch" -s h -l help -d 'show the help and exit'

# shell
complete -c ntm -n "__ntm_using shell" -s h -l help -d 'show the help and exit'

# help
complete -c ntm -n "__ntm_using help" -l commands -d 'one line per command and subcommand with its options'
complete -c ntm -n "__ntm_using help" -l json -d 'the command table as JSON'
complete -c ntm -n "__ntm_using help" -s h -l help -d 'show the help and exit'
complete -c ntm -n "__fish_seen_subcommand_from help; and not __fish_seen_subcommand_from $ntm_commands[1..-2]" -a "$ntm_commands"
