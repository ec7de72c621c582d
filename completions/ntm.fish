# fish completion for ntm(1). Keep in step with `ntm help --commands`
# (scripts/docs-check.sh checks).

set -l ntm_commands login logout status up down register tunnel keys send fetch shell help

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
complete -c ntm -n "not __fish_seen_subcommand_from $ntm_commands" -a tunnel -d 'tunnels to peers: ping, open, listen, list, close, forward'
complete -c ntm -n "not __fish_seen_subcommand_from $ntm_commands" -a keys -d 'end-to-end keys with peers: exchange, list, show, rotate, forget'
complete -c ntm -n "not __fish_seen_subcommand_from $ntm_commands" -a send -d 'send a file end to end encrypted through the cache server'
complete -c ntm -n "not __fish_seen_subcommand_from $ntm_commands" -a fetch -d 'fetch, decrypt and confirm what peers sent'
complete -c ntm -n "not __fish_seen_subcommand_from $ntm_commands" -a shell -d 'interactive shell with completion and history'
complete -c ntm -n "not __fish_seen_subcommand_from $ntm_commands" -a help -d 'show help for ntm or one command'

# login
complete -c ntm -n "__fish_seen_subcommand_from login" -s u -l user -x -d 'account name'
complete -c ntm -n "__fish_seen_subcommand_from login" -l password-file -r -F -d 'read the password from FILE'
complete -c ntm -n "__fish_seen_subcommand_from login" -l ca -r -F -d 'CA bundle the DC certificate must chain to'
complete -c ntm -n "__fish_seen_subcommand_from login" -l device -x -d 'device id'
complete -c ntm -n "__fish_seen_subcommand_from login" -l push -x -d 'https URL the DC notifies when a direction waits'
complete -c ntm -n "__fish_seen_subcommand_from login" -l timeout -x -d 'give up after SEC seconds (1..300)'
complete -c ntm -n "__fish_seen_subcommand_from login" -l json -d 'print one JSON object'
complete -c ntm -n "__fish_seen_subcommand_from login" -s h -l help -d 'show the help and exit'

# logout
complete -c ntm -n "__fish_seen_subcommand_from logout" -l timeout -x -d 'give up after SEC seconds (1..300)'
complete -c ntm -n "__fish_seen_subcommand_from logout" -l json -d 'print one JSON object'
complete -c ntm -n "__fish_seen_subcommand_from logout" -s h -l help -d 'show the help and exit'

# status
complete -c ntm -n "__fish_seen_subcommand_from status" -l offline -d 'do not ask the DC'
complete -c ntm -n "__fish_seen_subcommand_from status" -l timeout -x -d 'give up after SEC seconds (1..300)'
complete -c ntm -n "__fish_seen_subcommand_from status" -l json -d 'print one JSON object'
complete -c ntm -n "__fish_seen_subcommand_from status" -s h -l help -d 'show the help and exit'

# up
complete -c ntm -n "__fish_seen_subcommand_from up" -s d -l foreground -d 'stay in the foreground'
complete -c ntm -n "__fish_seen_subcommand_from up" -l port -x -d 'UDP port of the agent'
complete -c ntm -n "__fish_seen_subcommand_from up" -l keepalive -x -d 'register every SEC seconds'
complete -c ntm -n "__fish_seen_subcommand_from up" -l dc-udp -x -d 'the DC UDP address ADDR:PORT'
complete -c ntm -n "__fish_seen_subcommand_from up" -l socks5 -x -d 'serve SOCKS5 on this loopback ADDR:PORT'
complete -c ntm -n "__fish_seen_subcommand_from up" -l tun -d 'TUN mode: the vIPs on a kernel interface (root)'
complete -c ntm -n "__fish_seen_subcommand_from up" -l resolver -x -d 'DNS resolver ADDR:PORT'
complete -c ntm -n "__fish_seen_subcommand_from up" -l timeout -x -d 'wait SEC seconds for the first registration'
complete -c ntm -n "__fish_seen_subcommand_from up" -s h -l help -d 'show the help and exit'

# down
complete -c ntm -n "__fish_seen_subcommand_from down" -l timeout -x -d 'wait at most SEC seconds'
complete -c ntm -n "__fish_seen_subcommand_from down" -s h -l help -d 'show the help and exit'

# register
complete -c ntm -n "__fish_seen_subcommand_from register" -l json -d 'print one JSON object'
complete -c ntm -n "__fish_seen_subcommand_from register" -l dc-udp -x -d 'the DC UDP address ADDR:PORT'
complete -c ntm -n "__fish_seen_subcommand_from register" -l resolver -x -d 'DNS resolver ADDR:PORT'
complete -c ntm -n "__fish_seen_subcommand_from register" -l timeout -x -d 'give up after SEC seconds (1..300)'
complete -c ntm -n "__fish_seen_subcommand_from register" -s h -l help -d 'show the help and exit'

# tunnel
complete -c ntm -n "__fish_seen_subcommand_from tunnel; and not __fish_seen_subcommand_from ping open listen list close forward" -a 'ping open listen list close forward'
complete -c ntm -n "__fish_seen_subcommand_from tunnel" -s c -l count -x -d 'ping: requests; listen: datagrams'
complete -c ntm -n "__fish_seen_subcommand_from tunnel" -s i -l interval -x -d 'seconds between pings'
complete -c ntm -n "__fish_seen_subcommand_from tunnel" -s 6 -l ipv6 -d 'use the IPv6 vIPs'
complete -c ntm -n "__fish_seen_subcommand_from tunnel" -l udp -x -d 'datagrams: the UDP port'
complete -c ntm -n "__fish_seen_subcommand_from tunnel" -l exec -x -a '(__fish_complete_command)' -d 'streams: run CMD on the stream'
complete -c ntm -n "__fish_seen_subcommand_from tunnel" -l local-port -x -d 'our UDP source port'
complete -c ntm -n "__fish_seen_subcommand_from tunnel" -l wait -x -d 'seconds to print replies after input ends'
complete -c ntm -n "__fish_seen_subcommand_from tunnel" -l timeout -x -d 'give up if the tunnel is not up in SEC seconds'
complete -c ntm -n "__fish_seen_subcommand_from tunnel" -s L -l local -x -d 'forward: [BIND:]LPORT:PEER:RPORT'
complete -c ntm -n "__fish_seen_subcommand_from tunnel" -s R -l remote -x -d 'forward: RPORT:HOST:PORT'
complete -c ntm -n "__fish_seen_subcommand_from tunnel" -l remove -x -d 'forward: remove forward ID'
complete -c ntm -n "__fish_seen_subcommand_from tunnel" -l json -d 'print one JSON object'
complete -c ntm -n "__fish_seen_subcommand_from tunnel" -s h -l help -d 'show the help and exit'

# keys
complete -c ntm -n "__fish_seen_subcommand_from keys; and not __fish_seen_subcommand_from exchange list show rotate forget" -a 'exchange list show rotate forget'
complete -c ntm -n "__fish_seen_subcommand_from keys" -l timeout -x -d 'give up after SEC seconds (1..300)'
complete -c ntm -n "__fish_seen_subcommand_from keys" -l json -d 'print one JSON object'
complete -c ntm -n "__fish_seen_subcommand_from keys" -s h -l help -d 'show the help and exit'

# send
complete -c ntm -n "__fish_seen_subcommand_from send" -F
complete -c ntm -n "__fish_seen_subcommand_from send" -l app -x -d 'application ID'
complete -c ntm -n "__fish_seen_subcommand_from send" -l service -x -d 'service ID'
complete -c ntm -n "__fish_seen_subcommand_from send" -l item -x -d 'service item ID'
complete -c ntm -n "__fish_seen_subcommand_from send" -l notify -x -d 'notification message (servers see it)'
complete -c ntm -n "__fish_seen_subcommand_from send" -l ttl -x -d 'keep the object SEC seconds at the CS'
complete -c ntm -n "__fish_seen_subcommand_from send" -l status -x -d 'show the delivery of object ID'
complete -c ntm -n "__fish_seen_subcommand_from send" -l timeout -x -d 'give up after SEC seconds (1..300)'
complete -c ntm -n "__fish_seen_subcommand_from send" -l progress -d 'show rate and time left even off a terminal'
complete -c ntm -n "__fish_seen_subcommand_from send" -l no-progress -d 'show no progress'
complete -c ntm -n "__fish_seen_subcommand_from send" -l json -d 'print one JSON object'
complete -c ntm -n "__fish_seen_subcommand_from send" -s h -l help -d 'show the help and exit'

# fetch
complete -c ntm -n "__fish_seen_subcommand_from fetch" -l from -x -d 'only what PEER sent'
complete -c ntm -n "__fish_seen_subcommand_from fetch" -l wait -d 'wait until something arrives'
complete -c ntm -n "__fish_seen_subcommand_from fetch" -s o -l output -r -a '(__fish_complete_directories)' -d 'write into DIR, or - for stdout'
complete -c ntm -n "__fish_seen_subcommand_from fetch" -l discard -x -d 'drop cache entry ID without fetching it'
complete -c ntm -n "__fish_seen_subcommand_from fetch" -l timeout -x -d 'give up after SEC seconds (1..300)'
complete -c ntm -n "__fish_seen_subcommand_from fetch" -l progress -d 'show rate and time left even off a terminal'
complete -c ntm -n "__fish_seen_subcommand_from fetch" -l no-progress -d 'show no progress'
complete -c ntm -n "__fish_seen_subcommand_from fetch" -l json -d 'print one JSON object'
complete -c ntm -n "__fish_seen_subcommand_from fetch" -s h -l help -d 'show the help and exit'

# shell
complete -c ntm -n "__fish_seen_subcommand_from shell" -s h -l help -d 'show the help and exit'

# help
complete -c ntm -n "__fish_seen_subcommand_from help" -l commands -d 'one line per command with all its options'
complete -c ntm -n "__fish_seen_subcommand_from help" -s h -l help -d 'show the help and exit'
complete -c ntm -n "__fish_seen_subcommand_from help; and not __fish_seen_subcommand_from $ntm_commands[1..-2]" -a "$ntm_commands"
