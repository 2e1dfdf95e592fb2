# The resolver (and, with `npm run emulators`, the emulators) as one image. tsx runs the TypeScript
# sources directly, and it is a runtime dependency, so the development tools are left out.
# Node 24 is the active LTS (supported until April 2028); dependencies (cookie@2 through fastify) need 22
# or newer. Development machines may still run Node 20: nothing in the code needs one version over another.
FROM node:24-slim

ENV HOST=0.0.0.0 \
    PORT=3000 \
    NODE_ENV=production \
    NPM_CONFIG_UPDATE_NOTIFIER=false \
    NPM_CONFIG_FUND=false

WORKDIR /app
# The emulators write their CA and state under /app/.data: the unprivileged user owns the app directory.
RUN chown node:node /app
USER node

COPY --chown=node:node package.json package-lock.json ./
RUN npm ci --omit=dev && npm cache clean --force

COPY --chown=node:node tsconfig.json ./
COPY --chown=node:node src ./src
COPY --chown=node:node emulators ./emulators

# Owned by the unprivileged user, so a named volume mounted here (the emulators' CA, shared with the
# resolver in docker-compose.yml) starts out writable by it; registration jobs without Redis go here too.
RUN mkdir -p .data/emulators .data/registrations

# 3000: the resolver; 8443: the emulators (npm run emulators).
EXPOSE 3000 8443
CMD ["npm", "start"]
