# Sourced by the load scripts (compare.sh, ab.sh, load.sh, soak.sh): the guarded sample's configuration for a load run.
# Rate limits raised so they never cap a run, and alice's balance and monthly cap large enough for every call (echo is
# free, add costs 800 micro-units).
unlimited=100000000
UNLIMITED_ARGS=(
    --McpGuard:RateLimits:Policies:default:Windows:0:Permits="$unlimited"
    --McpGuard:RateLimits:Policies:default:Windows:1:Permits="$unlimited"
    --McpGuard:RateLimits:Policies:add:Windows:0:Permits="$unlimited"
    --McpGuard:Accounts:alice:InitialBalance=1000000000000
    --McpGuard:Accounts:alice:MonthlyCap=2000000000000
)
