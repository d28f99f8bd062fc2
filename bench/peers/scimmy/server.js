// SCIMMY peer for scimd's benchmark harness (BENCHMARKS.md): Users and
// Groups kept in Maps, served by scimmy-routers on express 4 (express 5 breaks
// its paging). No authentication: every request is accepted, as for the
// scim2-server peer. Usage: node server.js --port 8081 [--host 127.0.0.1]
import express from "express";
import SCIMMY from "scimmy";
import SCIMMYRouters from "scimmy-routers";
import {randomUUID} from "node:crypto";

const arg = (name, fallback) => {
    const at = process.argv.indexOf(`--${name}`);
    return at > 0 && process.argv[at + 1] !== undefined ? process.argv[at + 1] : fallback;
};
const host = arg("host", "127.0.0.1");
const port = Number(arg("port", "8081"));

// One in-memory store per resource type, with a userName index for uniqueness.
function declare(Resource, uniqueAttribute) {
    const byId = new Map();
    const byUnique = new Map();
    const uniqueOf = (data) => (uniqueAttribute ? String(data[uniqueAttribute] ?? "").toLowerCase() : null);

    Resource
        .ingress((resource, instance) => {
            const now = new Date();
            const key = uniqueOf(instance);
            if (resource.id) {
                const stored = byId.get(resource.id);
                if (!stored) throw new SCIMMY.Types.Error(404, null, `Resource ${resource.id} not found`);
                const owner = key ? byUnique.get(key) : undefined;
                if (owner && owner !== resource.id)
                    throw new SCIMMY.Types.Error(409, "uniqueness", `${uniqueAttribute} is already taken`);
                const oldKey = uniqueOf(stored);
                if (oldKey && oldKey !== key) byUnique.delete(oldKey);
                const updated = {...instance, id: resource.id, meta: {...stored.meta, lastModified: now}};
                byId.set(resource.id, updated);
                if (key) byUnique.set(key, resource.id);
                return updated;
            }
            if (key && byUnique.has(key))
                throw new SCIMMY.Types.Error(409, "uniqueness", `${uniqueAttribute} is already taken`);
            const id = randomUUID();
            const created = {...instance, id, meta: {created: now, lastModified: now}};
            byId.set(id, created);
            if (key) byUnique.set(key, id);
            return created;
        })
        .egress((resource) => {
            if (resource.id) {
                const stored = byId.get(resource.id);
                if (!stored) throw new SCIMMY.Types.Error(404, null, `Resource ${resource.id} not found`);
                return stored;
            }
            const all = [...byId.values()];
            // A lone `<unique attribute> eq "…"` is answered from the index,
            // as scim2-server's in-memory storage does.
            const [expression, ...others] = resource.filter ?? [];
            const keys = expression ? Object.keys(expression) : [];
            if (uniqueAttribute && others.length === 0 && keys.length === 1
                && keys[0].toLowerCase() === uniqueAttribute.toLowerCase()
                && Array.isArray(expression[keys[0]]) && expression[keys[0]][0] === "eq"
                && expression[keys[0]].length === 2) {
                const id = byUnique.get(String(expression[keys[0]][1]).toLowerCase());
                return id ? [byId.get(id)] : [];
            }
            if (resource.filter) return resource.filter.match(all);
            const {startIndex = 1, count = 20, sortBy} = resource.constraints ?? {};
            if (sortBy !== undefined) return all;
            // Unsorted pages: hand over only the page, in a sparse array as long
            // as the whole list (SCIMMY's documented way to carry totalResults),
            // so that SCIMMY does not build every resource for each page. Pages
            // starting within the first `count` are handed over from the start,
            // because ListResponse then applies startIndex itself.
            const end = Math.min(all.length, startIndex - 1 + count);
            const page = startIndex <= count ? all.slice(0, end) : all.slice(startIndex - 1, end);
            page.length = all.length;
            return page;
        })
        .degress((resource) => {
            const stored = byId.get(resource.id);
            if (!stored) throw new SCIMMY.Types.Error(404, null, `Resource ${resource.id} not found`);
            byId.delete(resource.id);
            const key = uniqueOf(stored);
            if (key) byUnique.delete(key);
        });
}

SCIMMY.Resources.declare(SCIMMY.Resources.User);
SCIMMY.Resources.declare(SCIMMY.Resources.Group);
declare(SCIMMY.Resources.User, "userName");
declare(SCIMMY.Resources.Group, null);
SCIMMY.Config.set({patch: true, filter: true, sort: true});

const app = express();
app.use("/scim/v2", new SCIMMYRouters({
    type: "bearer",
    handler: () => "bench",
}));
app.listen(port, host, () => console.log(`SCIMMY peer listening on http://${host}:${port}/scim/v2`));
