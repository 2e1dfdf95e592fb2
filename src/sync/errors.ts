// Errors of the sync's HTTP face, @fastify/error style: the HTTP layer sends each as problem+json.
import createError from '@fastify/error'

export const NotificationRefused = createError('NOTIFICATION_REFUSED', 'The notification does not carry this service\'s clientState for a tenant it syncs; nothing was done. Only Microsoft Graph, through the subscriptions this service made, sends notifications here.', 403)
export const NotificationsNotConfigured = createError('NOTIFICATIONS_NOT_CONFIGURED', 'This service does not take change notifications: the operator sets PUBLIC_URL (and keeps SYNC_ENABLED on) to have it subscribe to Graph\'s.', 404)
export const ValidationTokenInvalid = createError('VALIDATION_TOKEN_INVALID', 'The validationToken must be 1 to %s printable characters.', 400)
