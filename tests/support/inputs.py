"""Hostile and valid Build input, shared by the unit tests of the formats and the API-server tests.

Each case is (id, value). The hostile values are the ones issue 6 found accepted, plus their near
relatives; the valid values are the forms users write, which must keep working.
"""

from typing import Final

LONG: Final = "a" * 400

GIT_URLS_HOSTILE: Final = [
    ("ext-remote-helper", "ext::sh -c touch% /tmp/pwned"),
    ("file-scheme", "file:///etc/passwd"),
    ("upload-pack-option", "--upload-pack=touch /tmp/x"),
    ("short-option", "-uhelp"),
    ("javascript", "javascript:alert(1)"),
    ("not-a-url", "not a url"),
    ("whitespace-only", "   "),
    ("embedded-newline", "https://example.com/app\n.git"),
    ("trailing-newline", "https://example.com/app.git\n"),
    ("plain-http", "http://example.com/app.git"),
    ("credentials-in-url", "https://user:token@example.com/app.git"),
    ("ssh-host-option", "ssh://-oProxyCommand=touch%20x/repo.git"),
    ("scp-user-option", "-oProxyCommand=x@host:repo.git"),
    ("scp-path-option", "git@example.com:--upload-pack=x"),
    ("scp-without-user", "example.com:app.git"),
    ("bidi-override", "https://example.com/app\u202e.git"),
]
GIT_URLS_VALID: Final = [
    ("https", "https://github.com/example/myapp.git"),
    ("https-no-suffix", "https://github.com/example/myapp"),
    ("https-port-percent", "https://dev.azure.com:443/org/My%20Project/_git/app"),
    ("ssh", "ssh://git@github.com/example/myapp.git"),
    ("ssh-port", "ssh://git@gitlab.example.com:2222/group/app.git"),
    ("ssh-no-user", "ssh://gitlab.example.com/group/app.git"),
    ("scp-like", "git@github.com:example/myapp.git"),
    ("scp-like-absolute", "git@example.com:/srv/git/app.git"),
]

ARCHIVE_URLS_HOSTILE: Final = [
    ("file-scheme", "file:///etc/shadow"),
    ("relative-path", "../../a.tgz"),
    ("plain-http", "http://example.com/a.tgz"),
    ("http-loopback-lookalike", "http://127.0.0.1.evil.example/a.tgz"),
    ("http-userinfo", "http://localhost@evil.example/a.tgz"),
    ("space", "https://example.com/a b.tgz"),
    ("newline", "https://example.com/a.tgz\n"),
]
ARCHIVE_URLS_VALID: Final = [
    ("https", "https://artifacts.example.com/uploads/myapp-1.tar.gz"),
    ("presigned", "https://bucket.s3.amazonaws.com/u/a.tgz?X-Amz-Expires=300&X-Amz-Signature=ab%2Fc"),
    ("http-127", "http://127.0.0.1:8080/a.tgz"),
    ("http-localhost", "http://localhost:9000/uploads/a.tar.gz"),
    ("http-ipv6-loopback", "http://[::1]:8080/a.tgz"),
]

REVISIONS_HOSTILE: Final = [
    ("upload-pack-option", "--upload-pack=touch /tmp/pwned"),
    ("dash", "-"),
    ("leading-dash", "-main"),
    ("shell-command", "v1 ; rm -rf /"),
    ("command-substitution", "$(touch/tmp/pwned)"),
    ("trailing-newline", "main\n"),
    ("double-dot", "a..b"),
    ("reflog", "main@{1}"),
    ("tilde", "HEAD~1"),
    ("caret", "v1^"),
    ("colon", "a:b"),
    ("glob", "feature*"),
    ("bracket", "a[b"),
    ("backslash", "a\\b"),
    ("lock-suffix", "main.lock"),
    ("lock-component", "refs/heads/x.lock/y"),
    ("trailing-slash", "feature/"),
    ("trailing-dot", "v1."),
    ("leading-dot-component", "refs/heads/.hidden"),
    ("double-slash", "refs//heads"),
    ("leading-slash", "/main"),
    ("lone-at", "@"),
    ("dash-component", "refs/heads/-x"),
]
REVISIONS_VALID: Final = [
    ("head", "HEAD"),
    ("branch", "main"),
    ("tag", "v1.2.3"),
    ("ref", "refs/heads/main"),
    ("tag-ref", "refs/tags/v1.2.3"),
    ("sha1", "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b"),
    ("short-sha", "9f86d08"),
    ("sha256", "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"),
    ("feature-branch", "feature/JIRA-123_fix"),
    ("renovate-branch", "renovate/@types-node-20.x"),
]

PROFILES_HOSTILE: Final = [
    ("newline", "production\n"),
    ("nul", "production\x00"),
    ("command-substitution", "$(touch /tmp/pwned)"),
    ("bidi-override", "production\u202e"),
    ("space", "has space"),
    ("path", "../x"),
    ("leading-dash", "-x"),
]
PROFILES_VALID: Final = [
    ("production", "production"),
    ("preview", "preview"),
    ("dashes", "development-simulator"),
    ("dots-underscores", "e2e_test.v2"),
]

SECRET_NAMES_HOSTILE: Final = [
    ("path", "../../etc"),
    ("upper", "UPPER"),
    ("space", "has space"),
    ("leading-dash", "-signing"),
    ("underscore", "my_secret"),
]
SECRET_NAMES_VALID: Final = [
    ("name", "myapp-ios-signing"),
    ("dotted", "signing.v2"),
]

LABEL_KEYS_HOSTILE: Final = [
    ("empty", ""),
    ("punctuation", "!!!"),
    ("space", "has space"),
    ("non-ascii", "ключ"),
    ("too-long", LONG),
    ("upper-prefix", "Example.COM/arch"),
    ("empty-name", "example.com/"),
    ("two-slashes", "a/b/c"),
    ("long-prefix", "a" * 254 + "/x"),
    ("long-name", "x" * 64),
]
LABEL_KEYS_VALID: Final = [
    ("plain", "xcode"),
    ("prefixed", "kubernetes.io/arch"),
    ("buildfarm", "buildfarm.dev/xcode"),
    ("name-63", "x" * 63),
]
LABEL_VALUES_HOSTILE: Final = [
    ("punctuation", "!!!"),
    ("space", "has space"),
    ("non-ascii", "значение"),
    ("too-long", LONG),
    ("leading-dash", "-x"),
]
LABEL_VALUES_VALID: Final = [
    ("plain", "arm64"),
    ("version", "16.2"),
    ("empty", ""),
]
