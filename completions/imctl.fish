function __imctl_should_offer_completions_for_flags_or_options -a expected_commands
    set -l non_repeating_flags_or_options $argv[2..]
    set -l non_repeating_flags_or_options_absent 0
    set -l positional_index 0
    set -l commands
    __imctl_parse_tokens
    test "$commands" = "$expected_commands"; and return $non_repeating_flags_or_options_absent
end

function __imctl_should_offer_completions_for_positional -a expected_commands positional_index_comparison expected_positional_index
    set -l non_repeating_flags_or_options
    set -l non_repeating_flags_or_options_absent 0
    set -l positional_index 0
    set -l commands
    __imctl_parse_tokens
    test "$commands" = "$expected_commands" -a \( "$positional_index" "$positional_index_comparison" "$expected_positional_index" \)
end

function __imctl_parse_tokens -S
    set -l unparsed_tokens (__imctl_tokens -pc)
    switch $unparsed_tokens[1]
    case 'imctl'
        __imctl_parse_subcommand 0 'version' 'h/help'
        switch $unparsed_tokens[1]
        case 'serve'
            __imctl_parse_subcommand 0 'host=' 'port=' 'database=' 'tls-cert=' 'tls-key=' 'no-compression' 'compression-window-bits=' 'max-message-bytes=' 'history-cache-bytes=' 'max-connections=' 'max-connections-per-address=' 'max-sends-per-second=' 'log-level=' 'log-format=' 'version' 'h/help'
        case 'login'
            __imctl_parse_subcommand 0 'server=' 'cacert=' 'user=' 'password-stdin' 'otp=' 'ttl=' 'version' 'h/help'
        case 'logout'
            __imctl_parse_subcommand 0 'server=' 'cacert=' 'version' 'h/help'
        case 'send'
            __imctl_parse_subcommand -r 2 'l/lines' '0/null' 'json' 'no-reconnect' 'timeout=' 'server=' 'cacert=' 'token=' 'no-compression' 'version' 'h/help'
        case 'listen'
            __imctl_parse_subcommand -r 1 'json' 'format=' 'n/count=' 'timeout=' 'since=' 'history=' 'no-reconnect' 'server=' 'cacert=' 'token=' 'no-compression' 'version' 'h/help'
        case 'users'
            __imctl_parse_subcommand 0 'version' 'h/help'
            switch $unparsed_tokens[1]
            case 'add'
                __imctl_parse_subcommand 1 'admin' 'password-stdin' 'database=' 'server=' 'token=' 'cacert=' 'version' 'h/help'
            case 'list'
                __imctl_parse_subcommand 0 'json' 'database=' 'server=' 'token=' 'cacert=' 'version' 'h/help'
            case 'remove'
                __imctl_parse_subcommand 1 'database=' 'server=' 'token=' 'cacert=' 'version' 'h/help'
            case 'passwd'
                __imctl_parse_subcommand 1 'password-stdin' 'database=' 'server=' 'token=' 'cacert=' 'version' 'h/help'
            case 'disable'
                __imctl_parse_subcommand 1 'database=' 'server=' 'token=' 'cacert=' 'version' 'h/help'
            case 'enable'
                __imctl_parse_subcommand 1 'database=' 'server=' 'token=' 'cacert=' 'version' 'h/help'
            case 'token'
                __imctl_parse_subcommand 1 'ttl=' 'label=' 'database=' 'server=' 'token=' 'cacert=' 'version' 'h/help'
            case 'tokens'
                __imctl_parse_subcommand 1 'json' 'database=' 'server=' 'token=' 'cacert=' 'version' 'h/help'
            case 'revoke'
                __imctl_parse_subcommand 2 'all' 'database=' 'server=' 'token=' 'cacert=' 'version' 'h/help'
            case 'otp'
                __imctl_parse_subcommand 1 'enable' 'disable' 'database=' 'server=' 'token=' 'cacert=' 'version' 'h/help'
            end
        case 'compress'
            __imctl_parse_subcommand -r 1 'levels=' 'json' 'messages' 'json-input' 'dict=' 'train' 'train-out=' 'window-bits=' 'c/stdout' 'd/decompress' 'format=' 'level=' 'p/threads=' '1' 'version' 'h/help'
        case 'bench'
            __imctl_parse_subcommand 0 'server=' 'servers=' 'balance=' 'token=' 'publishers=' 'subscribers=' 'rooms=' 'messages=' 'size=' 'rate=' 'duration=' 'no-compression' 'cacert=' 'json' 'version' 'h/help'
        case 'help'
            __imctl_parse_subcommand -r 1 'version'
        end
    end
end

function __imctl_tokens
    if test (string split -m 1 -f 1 -- . "$FISH_VERSION") -gt 3
        commandline --tokens-raw $argv
    else
        commandline -o $argv
    end
end

function __imctl_parse_subcommand -S -a positional_count
    argparse -s r -- $argv
    set -l option_specs $argv[2..]
    set -l is_repeating_positional $_flag_r
    set -el _flag_r
    set -a commands $unparsed_tokens[1]
    set positional_index 0
    while true
        set -e unparsed_tokens[1]
        argparse -sn "$commands" $option_specs -- $unparsed_tokens 2> /dev/null
        set unparsed_tokens $argv
        set positional_index (math $positional_index + 1)
        for non_repeating_flag_or_option in $non_repeating_flags_or_options
            if set -ql "_flag_$(string replace -a - _ -- $non_repeating_flag_or_option)"
                set non_repeating_flags_or_options_absent 1
                break
            end
        end
        test (count $unparsed_tokens) -eq 0 -o \( -z "$is_repeating_positional" -a "$positional_index" -gt "$positional_count" \) && break
    end
end

function __imctl_complete_directories
    set -l token (commandline -t)
    string match -- '*/' $token
    set -l subdirs $token*/
    printf %s\n $subdirs
end

function __imctl_custom_completion
    set -x SAP_SHELL fish
    set -x SAP_SHELL_VERSION $FISH_VERSION
    set -l tokens (__imctl_tokens -p)
    if test -z "$(__imctl_tokens -t)"
        set -l index (count (__imctl_tokens -pc))
        set tokens $tokens[..$index] \'\' $tokens[(math $index + 1)..]
    end
    command $tokens[1] $argv $tokens
end

complete -c 'imctl' -f
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl" version' -l 'version' -d 'Show the version.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_positional "imctl" -eq 1' -fa 'serve' -d 'Run the instant-messaging server (WebSocket at /v1/ws, HTTP JSON beside it).'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_positional "imctl" -eq 1' -fa 'login' -d 'Sign in: trade a password for a token, kept in $XDG_CONFIG_HOME/imctl/credentials.json (0600).'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_positional "imctl" -eq 1' -fa 'logout' -d 'Revoke the stored token for a server and forget it.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_positional "imctl" -eq 1' -fa 'send' -d 'Send a message to a room or @user: from arguments, or from stdin (whole, per line, or per NUL).'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_positional "imctl" -eq 1' -fa 'listen' -d 'Print messages of rooms and @user conversations as they arrive (every direct conversation when no target).'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_positional "imctl" -eq 1' -fa 'users' -d 'Manage users and API tokens, on the store directly or through a server with --server.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_positional "imctl" -eq 1' -fa 'compress' -d 'Measure zlib on your data, or gzip/gunzip a stream.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_positional "imctl" -eq 1' -fa 'bench' -d 'Load-test a server (or one it starts in process) and report throughput, latency, losses and duplicates.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_positional "imctl" -eq 1' -fa 'help' -d 'Show subcommand help information.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl serve" host' -l 'host' -d 'Address to listen on.' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl serve" port' -l 'port' -d 'Port to listen on; 0 picks a free one (named on stderr when ready).' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl serve" database' -l 'database' -d 'SQLite file, or postgres://user:password@host:port/database (default: $IMCTL_DATABASE, else $XDG_DATA_HOME/imctl/imctl.db or ~/.local/share/imctl/imctl.db).' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl serve" tls-cert' -l 'tls-cert' -d 'PEM certificate chain for TLS.' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl serve" tls-key' -l 'tls-key' -d 'PEM private key for TLS.' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl serve" no-compression' -l 'no-compression' -d 'Do not offer permessage-deflate.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl serve" compression-window-bits' -l 'compression-window-bits' -d 'Largest permessage-deflate window, 9–15 bits: smaller saves memory per connection.' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl serve" max-message-bytes' -l 'max-message-bytes' -d 'Largest message body in bytes.' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl serve" history-cache-bytes' -l 'history-cache-bytes' -d 'Memory for recent messages served to history and resume without the store (0: off).' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl serve" max-connections' -l 'max-connections' -d 'Open connections in all; past it new ones are closed at once.' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl serve" max-connections-per-address' -l 'max-connections-per-address' -d 'Open connections from one address.' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl serve" max-sends-per-second' -l 'max-sends-per-second' -d 'Sends per second one connection may make (0: no limit); over it sends get a rate_limited error.' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl serve" log-level' -l 'log-level' -d 'trace, debug, info, notice, warning, error or critical.' -rfka 'trace debug info notice warning error critical'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl serve" log-format' -l 'log-format' -d 'text or json.' -rfka 'text json'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl serve" version' -l 'version' -d 'Show the version.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl serve" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl login" server' -l 'server' -d 'Server URL, or several comma-separated (nodes of one service, tried in turn) (default: $IMCTL_SERVER, else the last one signed in to, else ws://127.0.0.1:7700).' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl login" cacert' -l 'cacert' -d 'PEM file of CA certificates to trust for wss:// (default: $IMCTL_CACERT, else the system\'s).' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl login" user' -l 'user' -d 'User name.' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl login" password-stdin' -l 'password-stdin' -d 'Read the password from the first line of stdin.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl login" otp' -l 'otp' -d 'One-time code, for a user with two-factor sign-in (asked for on a terminal).' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl login" ttl' -l 'ttl' -d 'Lifetime of the token, e.g. 12h or 90d (default: 30d).' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl login" version' -l 'version' -d 'Show the version.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl login" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl logout" server' -l 'server' -d 'Server URL, or several comma-separated (nodes of one service, tried in turn) (default: $IMCTL_SERVER, else the last one signed in to, else ws://127.0.0.1:7700).' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl logout" cacert' -l 'cacert' -d 'PEM file of CA certificates to trust for wss:// (default: $IMCTL_CACERT, else the system\'s).' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl logout" version' -l 'version' -d 'Show the version.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl logout" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_positional "imctl send" -eq 1' -fka '(__imctl_custom_completion ---completion send -- positional@0 (count (__imctl_tokens -pc)) (__imctl_tokens -tC))'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl send" l lines' -s 'l' -l 'lines' -d 'Send each non-empty line of stdin as its own message.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl send" 0 null' -s '0' -l 'null' -d 'Split stdin on NUL bytes.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl send" json' -l 'json' -d 'Print one JSON ack per message (id, room, seq, ts).'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl send" no-reconnect' -l 'no-reconnect' -d 'On a lost connection exit 69 instead of reconnecting and resending.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl send" timeout' -l 'timeout' -d 'Give up (exit 75) when not done within this time, e.g. 10s.' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl send" server' -l 'server' -d 'Server URL, or several comma-separated (nodes of one service, tried in turn) (default: $IMCTL_SERVER, else the last one signed in to, else ws://127.0.0.1:7700).' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl send" cacert' -l 'cacert' -d 'PEM file of CA certificates to trust for wss:// (default: $IMCTL_CACERT, else the system\'s).' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl send" token' -l 'token' -d 'API token (default: $IMCTL_TOKEN, else the one `imctl login` stored for the server).' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl send" no-compression' -l 'no-compression' -d 'Do not ask for permessage-deflate.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl send" version' -l 'version' -d 'Show the version.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl send" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_positional "imctl listen" -ge 1' -fka '(__imctl_custom_completion ---completion listen -- positional@0 (count (__imctl_tokens -pc)) (__imctl_tokens -tC))'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl listen" json' -l 'json' -d 'One JSON object per message.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl listen" format' -l 'format' -d 'Template with {id} {room} {seq} {from} {ts} {body}.' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl listen" count n' -s 'n' -l 'count' -d 'Exit 0 after this many messages.' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl listen" timeout' -l 'timeout' -d 'End after this long without a message (exit 75 if --count was not reached).' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl listen" since' -l 'since' -d 'First print stored messages after this seq (one target).' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl listen" history' -l 'history' -d 'First print the last N stored messages of each target.' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl listen" no-reconnect' -l 'no-reconnect' -d 'On a lost connection exit 69 instead of reconnecting.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl listen" server' -l 'server' -d 'Server URL, or several comma-separated (nodes of one service, tried in turn) (default: $IMCTL_SERVER, else the last one signed in to, else ws://127.0.0.1:7700).' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl listen" cacert' -l 'cacert' -d 'PEM file of CA certificates to trust for wss:// (default: $IMCTL_CACERT, else the system\'s).' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl listen" token' -l 'token' -d 'API token (default: $IMCTL_TOKEN, else the one `imctl login` stored for the server).' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl listen" no-compression' -l 'no-compression' -d 'Do not ask for permessage-deflate.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl listen" version' -l 'version' -d 'Show the version.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl listen" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users" version' -l 'version' -d 'Show the version.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_positional "imctl users" -eq 1' -fa 'add' -d 'Create a user (asks for the password twice on a terminal).'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_positional "imctl users" -eq 1' -fa 'list' -d 'List users.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_positional "imctl users" -eq 1' -fa 'remove' -d 'Remove a user and their tokens (their messages stay).'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_positional "imctl users" -eq 1' -fa 'passwd' -d 'Set a user\'s password; revokes all their tokens.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_positional "imctl users" -eq 1' -fa 'disable' -d 'Stop a user from signing in or using tokens.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_positional "imctl users" -eq 1' -fa 'enable' -d 'Let a disabled user sign in again.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_positional "imctl users" -eq 1' -fa 'token' -d 'Create an API token for a user and print it once, on stdout.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_positional "imctl users" -eq 1' -fa 'tokens' -d 'List a user\'s tokens (id, label, created, expires, last used).'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_positional "imctl users" -eq 1' -fa 'revoke' -d 'Revoke one token by id, or all with --all.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_positional "imctl users" -eq 1' -fa 'otp' -d 'Turn two-factor sign-in (TOTP: SHA-1, 6 digits, 30 s) on or off for a user.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users add" admin' -l 'admin' -d 'Make the user an admin.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users add" password-stdin' -l 'password-stdin' -d 'Read the password from the first line of stdin.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users add" database' -l 'database' -d 'SQLite file, or postgres://user:password@host:port/database (default: $IMCTL_DATABASE, else $XDG_DATA_HOME/imctl/imctl.db or ~/.local/share/imctl/imctl.db).' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users add" server' -l 'server' -d 'Manage users through this server (with an admin token) instead of the store.' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users add" token' -l 'token' -d 'API token (default: $IMCTL_TOKEN, else the one `imctl login` stored for the server).' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users add" cacert' -l 'cacert' -d 'PEM file of CA certificates to trust for wss:// (default: $IMCTL_CACERT, else the system\'s).' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users add" version' -l 'version' -d 'Show the version.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users add" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users list" json' -l 'json' -d 'One JSON object per user.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users list" database' -l 'database' -d 'SQLite file, or postgres://user:password@host:port/database (default: $IMCTL_DATABASE, else $XDG_DATA_HOME/imctl/imctl.db or ~/.local/share/imctl/imctl.db).' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users list" server' -l 'server' -d 'Manage users through this server (with an admin token) instead of the store.' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users list" token' -l 'token' -d 'API token (default: $IMCTL_TOKEN, else the one `imctl login` stored for the server).' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users list" cacert' -l 'cacert' -d 'PEM file of CA certificates to trust for wss:// (default: $IMCTL_CACERT, else the system\'s).' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users list" version' -l 'version' -d 'Show the version.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users list" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users remove" database' -l 'database' -d 'SQLite file, or postgres://user:password@host:port/database (default: $IMCTL_DATABASE, else $XDG_DATA_HOME/imctl/imctl.db or ~/.local/share/imctl/imctl.db).' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users remove" server' -l 'server' -d 'Manage users through this server (with an admin token) instead of the store.' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users remove" token' -l 'token' -d 'API token (default: $IMCTL_TOKEN, else the one `imctl login` stored for the server).' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users remove" cacert' -l 'cacert' -d 'PEM file of CA certificates to trust for wss:// (default: $IMCTL_CACERT, else the system\'s).' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users remove" version' -l 'version' -d 'Show the version.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users remove" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users passwd" password-stdin' -l 'password-stdin' -d 'Read the password from the first line of stdin.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users passwd" database' -l 'database' -d 'SQLite file, or postgres://user:password@host:port/database (default: $IMCTL_DATABASE, else $XDG_DATA_HOME/imctl/imctl.db or ~/.local/share/imctl/imctl.db).' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users passwd" server' -l 'server' -d 'Manage users through this server (with an admin token) instead of the store.' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users passwd" token' -l 'token' -d 'API token (default: $IMCTL_TOKEN, else the one `imctl login` stored for the server).' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users passwd" cacert' -l 'cacert' -d 'PEM file of CA certificates to trust for wss:// (default: $IMCTL_CACERT, else the system\'s).' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users passwd" version' -l 'version' -d 'Show the version.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users passwd" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users disable" database' -l 'database' -d 'SQLite file, or postgres://user:password@host:port/database (default: $IMCTL_DATABASE, else $XDG_DATA_HOME/imctl/imctl.db or ~/.local/share/imctl/imctl.db).' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users disable" server' -l 'server' -d 'Manage users through this server (with an admin token) instead of the store.' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users disable" token' -l 'token' -d 'API token (default: $IMCTL_TOKEN, else the one `imctl login` stored for the server).' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users disable" cacert' -l 'cacert' -d 'PEM file of CA certificates to trust for wss:// (default: $IMCTL_CACERT, else the system\'s).' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users disable" version' -l 'version' -d 'Show the version.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users disable" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users enable" database' -l 'database' -d 'SQLite file, or postgres://user:password@host:port/database (default: $IMCTL_DATABASE, else $XDG_DATA_HOME/imctl/imctl.db or ~/.local/share/imctl/imctl.db).' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users enable" server' -l 'server' -d 'Manage users through this server (with an admin token) instead of the store.' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users enable" token' -l 'token' -d 'API token (default: $IMCTL_TOKEN, else the one `imctl login` stored for the server).' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users enable" cacert' -l 'cacert' -d 'PEM file of CA certificates to trust for wss:// (default: $IMCTL_CACERT, else the system\'s).' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users enable" version' -l 'version' -d 'Show the version.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users enable" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users token" ttl' -l 'ttl' -d 'Lifetime, e.g. 30d (default: no expiry).' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users token" label' -l 'label' -d 'A label to recognise the token by.' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users token" database' -l 'database' -d 'SQLite file, or postgres://user:password@host:port/database (default: $IMCTL_DATABASE, else $XDG_DATA_HOME/imctl/imctl.db or ~/.local/share/imctl/imctl.db).' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users token" server' -l 'server' -d 'Manage users through this server (with an admin token) instead of the store.' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users token" token' -l 'token' -d 'API token (default: $IMCTL_TOKEN, else the one `imctl login` stored for the server).' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users token" cacert' -l 'cacert' -d 'PEM file of CA certificates to trust for wss:// (default: $IMCTL_CACERT, else the system\'s).' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users token" version' -l 'version' -d 'Show the version.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users token" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users tokens" json' -l 'json' -d 'One JSON object per token.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users tokens" database' -l 'database' -d 'SQLite file, or postgres://user:password@host:port/database (default: $IMCTL_DATABASE, else $XDG_DATA_HOME/imctl/imctl.db or ~/.local/share/imctl/imctl.db).' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users tokens" server' -l 'server' -d 'Manage users through this server (with an admin token) instead of the store.' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users tokens" token' -l 'token' -d 'API token (default: $IMCTL_TOKEN, else the one `imctl login` stored for the server).' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users tokens" cacert' -l 'cacert' -d 'PEM file of CA certificates to trust for wss:// (default: $IMCTL_CACERT, else the system\'s).' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users tokens" version' -l 'version' -d 'Show the version.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users tokens" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users revoke" all' -l 'all' -d 'Revoke every token of the user.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users revoke" database' -l 'database' -d 'SQLite file, or postgres://user:password@host:port/database (default: $IMCTL_DATABASE, else $XDG_DATA_HOME/imctl/imctl.db or ~/.local/share/imctl/imctl.db).' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users revoke" server' -l 'server' -d 'Manage users through this server (with an admin token) instead of the store.' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users revoke" token' -l 'token' -d 'API token (default: $IMCTL_TOKEN, else the one `imctl login` stored for the server).' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users revoke" cacert' -l 'cacert' -d 'PEM file of CA certificates to trust for wss:// (default: $IMCTL_CACERT, else the system\'s).' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users revoke" version' -l 'version' -d 'Show the version.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users revoke" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users otp" enable' -l 'enable' -d 'Turn it on and print the otpauth:// URI.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users otp" disable' -l 'disable' -d 'Turn it off.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users otp" database' -l 'database' -d 'SQLite file, or postgres://user:password@host:port/database (default: $IMCTL_DATABASE, else $XDG_DATA_HOME/imctl/imctl.db or ~/.local/share/imctl/imctl.db).' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users otp" server' -l 'server' -d 'Manage users through this server (with an admin token) instead of the store.' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users otp" token' -l 'token' -d 'API token (default: $IMCTL_TOKEN, else the one `imctl login` stored for the server).' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users otp" cacert' -l 'cacert' -d 'PEM file of CA certificates to trust for wss:// (default: $IMCTL_CACERT, else the system\'s).' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users otp" version' -l 'version' -d 'Show the version.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl users otp" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_positional "imctl compress" -ge 1' -F
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl compress" levels' -l 'levels' -d 'Levels to measure: a list like 1,6,9 or a range like 1-9 (default 1,6,9).' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl compress" json' -l 'json' -d 'Print JSON Lines (one object per table row) instead of a table.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl compress" messages' -l 'messages' -d 'Study the input as chat messages, one per line.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl compress" json-input' -l 'json-input' -d 'Lines are JSON objects; the message is their "body" string (detected automatically otherwise).'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl compress" dict' -l 'dict' -d 'Preset dictionary for the dictionary row of --messages.' -rF
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl compress" train' -l 'train' -d 'Train a preset dictionary from a sample of the messages for the dictionary row.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl compress" train-out' -l 'train-out' -d 'Write the trained dictionary to this file.' -rF
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl compress" window-bits' -l 'window-bits' -d 'LZ77 window as a power of two, 9–15 (RFC 7692 max_window_bits).' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl compress" c stdout' -s 'c' -l 'stdout' -d 'Compress to standard output.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl compress" d decompress' -s 'd' -l 'decompress' -d 'Decompress to standard output.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl compress" format' -l 'format' -d 'Framing for -c and -d, and for the level measurement.' -rfka 'gzip zlib raw'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl compress" level' -l 'level' -d 'Compression level for -c, 0–9 (default 6).' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl compress" p threads' -s 'p' -l 'threads' -d 'Threads for -c with gzip framing, as pigz -p (default: the CPUs this process may use).' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl compress" 1' -s '1' -d '-1 (fastest) … -9 (smallest): shorthand for --level N.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl compress" version' -l 'version' -d 'Show the version.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl compress" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl bench" server' -l 'server' -d 'Server to load (default: start one in process).' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl bench" servers' -l 'servers' -d 'Several servers, comma-separated; clients are spread with --balance.' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl bench" balance' -l 'balance' -d 'How clients are spread over --servers: round-robin, random or least-connections.' -rfka 'round-robin random least-connections'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl bench" token' -l 'token' -d 'API token (default: $IMCTL_TOKEN, else the one `imctl login` stored for the server).' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl bench" publishers' -l 'publishers' -d 'Publishing clients.' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl bench" subscribers' -l 'subscribers' -d 'Subscribing clients.' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl bench" rooms' -l 'rooms' -d 'Rooms; client i uses room i mod N.' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl bench" messages' -l 'messages' -d 'Messages in all (over all publishers).' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl bench" size' -l 'size' -d 'Message body size in bytes.' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl bench" rate' -l 'rate' -d 'Messages per second over all publishers; 0 = as fast as acks allow.' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl bench" duration' -l 'duration' -d 'Publish for this long instead of --messages.' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl bench" no-compression' -l 'no-compression' -d 'Do not ask for permessage-deflate.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl bench" cacert' -l 'cacert' -d 'PEM file of CA certificates to trust for wss:// (default: $IMCTL_CACERT, else the system\'s).' -rfka ''
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl bench" json' -l 'json' -d 'Print the report as one JSON object.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl bench" version' -l 'version' -d 'Show the version.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl bench" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'imctl' -n '__imctl_should_offer_completions_for_flags_or_options "imctl help" version' -l 'version' -d 'Show the version.'
