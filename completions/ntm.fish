# fish completion for ntm(1). Keep in step with `ntm help --commands`
# (scripts/docs-check.sh checks).

set -l ntm_commands login logout status shell help

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
complete -c ntm -n "not __fish_seen_subcommand_from $ntm_commands" -a shell -d 'interactive shell with completion and history'
complete -c ntm -n "not __fish_seen_subcommand_from $ntm_commands" -a help -d 'show help for ntm or one command'

# login
complete -c ntm -n "__fish_seen_subcommand_from login" -s u -l user -x -d 'account name'
complete -c ntm -n "__fish_seen_subcommand_from login" -l password-file -r -F -d 'read the password from FILE'
complete -c ntm -n "__fish_seen_subcommand_from login" -l ca -r -F -d 'CA bundle the DC certificate must chain to'
complete -c ntm -n "__fish_seen_subcommand_from login" -l device -x -d 'device id'
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

# shell
complete -c ntm -n "__fish_seen_subcommand_from shell" -s h -l help -d 'show the help and exit'

# help
complete -c ntm -n "__fish_seen_subcommand_from help" -l commands -d 'one line per command with all its options'
complete -c ntm -n "__fish_seen_subcommand_from help" -s h -l help -d 'show the help and exit'
complete -c ntm -n "__fish_seen_subcommand_from help; and not __fish_seen_subcommand_from $ntm_commands[1..-2]" -a "$ntm_commands"
