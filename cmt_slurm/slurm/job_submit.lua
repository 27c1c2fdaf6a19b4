--[[ cmt-slurm job_submit plugin (JobSubmitPlugins=lua; install beside slurm.conf).

Users write --constraint=os:rocky9, libc:2.28 or image:NAME; Slurm's node_features/helpers plugin
only knows names without ':' (os=rocky9, libc=2.28, image=NAME). This rewrites them, and refuses at
submit time, with a message naming the catalogue's choices, what would otherwise fail later or
cryptically ("Invalid feature specification"):
  - an os or image the catalogue does not have, a libc no image reaches;
  - two os (or image) terms in one job;
  - an os/libc/image term combined with '|', '[...]', '(...)' or a '*N' count (helpers mode: Slurm
    accepts only '&' and ',' between changeable features).
libc:V means "at least V": it becomes the lowest catalogue floor >= V, which exactly the images with
glibc >= V provide. The catalogue table comes from `cmt slurm config` (cmt_catalogue.lua, same dir).
]]

local function script_dir()
    local src = debug.getinfo(1, "S").source
    return (src:sub(1, 1) == "@" and src:match("^@(.*)/[^/]*$")) or "."
end

local catalogue_path = script_dir() .. "/cmt_catalogue.lua"
local ok, cat = pcall(dofile, catalogue_path)
if not ok or type(cat) ~= "table" then
    slurm.log_error("cmt: cannot load %s: %s", catalogue_path, tostring(cat))
    cat = nil
end

local function sorted_keys(t)
    local out = {}
    for k in pairs(t) do out[#out + 1] = k end
    table.sort(out)
    return out
end

local function version_parts(v)
    local out = {}
    for n in v:gmatch("%d+") do out[#out + 1] = tonumber(n) end
    return out
end

local function version_less(a, b)
    local pa, pb = version_parts(a), version_parts(b)
    for i = 1, math.max(#pa, #pb) do
        local x, y = pa[i] or 0, pb[i] or 0
        if x ~= y then return x < y end
    end
    return false
end

local function libc_floor(v)
    local best = nil
    for floor in pairs(cat.libc) do
        if not version_less(floor, v) and (best == nil or version_less(floor, best)) then best = floor end
    end
    return best
end

-- Returns the rewritten constraint, or nil and the message for the user.
local function rewrite(constraint)
    local has_cmt = false
    for key in constraint:gmatch("(%a+)[:=]") do
        if key == "os" or key == "libc" or key == "image" then has_cmt = true end
    end
    if not has_cmt then return constraint end
    if constraint:find("[|%[%]%(%)%*]") then
        return nil, "cmt: --constraint=" .. constraint .. ": os/libc/image terms can only be joined"
            .. " with '&' (no '|', '[...]', '(...)' or '*N': Slurm cannot reboot nodes for those)"
    end
    local out, seen = {}, {}
    for term in constraint:gmatch("[^&,]+") do
        local key, value = term:match("^%s*(%a+)[:=](.-)%s*$")
        local feature = term
        if key == "os" then
            if not cat.os[value] then
                return nil, "cmt: unknown os '" .. value .. "' in --constraint; the catalogue has: "
                    .. table.concat(sorted_keys(cat.os), ", ")
            end
            feature = "os=" .. value
        elseif key == "libc" then
            if not value:match("^%d+%.%d+[%.%d]*$") then
                return nil, "cmt: libc:" .. value .. " is not a version like 2.28"
            end
            local floor = libc_floor(value)
            if not floor then
                return nil, "cmt: no image in the catalogue has glibc >= " .. value .. " (glibc known: "
                    .. table.concat(sorted_keys(cat.libc), ", ") .. ")"
            end
            feature = "libc=" .. floor
        elseif key == "image" then
            local mapped = cat.images[value]
            if not mapped then
                return nil, "cmt: unknown image '" .. value .. "' in --constraint; the catalogue has: "
                    .. table.concat(sorted_keys(cat.images), ", ")
            end
            feature = "image=" .. mapped
        else
            key = nil
        end
        if key == "os" or key == "image" then
            if seen[key] and seen[key] ~= feature then
                return nil, "cmt: --constraint=" .. constraint .. " asks for two " .. key
                    .. " values; a node runs one image at a time"
            end
            seen[key] = feature
        end
        out[#out + 1] = feature
    end
    return table.concat(out, "&")
end

local function apply(job_desc)
    local constraint = job_desc.features
    if constraint == nil or constraint == "" then return slurm.SUCCESS end
    if cat == nil then
        slurm.log_user("cmt: the image catalogue table is missing on the controller; ask an admin")
        return slurm.ERROR
    end
    local new, err = rewrite(constraint)
    if new == nil then
        slurm.log_user("%s", err)
        return slurm.ERROR
    end
    if new ~= constraint then
        slurm.log_debug("cmt: constraint %s -> %s", constraint, new)
        job_desc.features = new
    end
    return slurm.SUCCESS
end

function slurm_job_submit(job_desc, part_list, submit_uid)
    return apply(job_desc)
end

function slurm_job_modify(job_desc, job_rec, part_list, modify_uid)
    return apply(job_desc)
end

return slurm.SUCCESS
