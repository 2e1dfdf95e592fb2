# The resolver (and, with `npm run emulators`, the emulators) as one image. tsx runs the TypeScript
# sources directly, and it is a runtime dependency, so the development tools are left out.
FROM node:20-slim

ENV HOST=0.0.0.0 \
    PORT=3000 \
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

# 3000: the resolver; 8443: the emulators (npm run emulators), or local mode's own.
EXPOSE 3000 8443
CMD ["npm", "start"]
