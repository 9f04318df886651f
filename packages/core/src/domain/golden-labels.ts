/**
 * The labels on every revision of a golden image after the first (an image that follows its
 * upstream): whose revision it is, its number, and the catalog entry it follows. Here, without
 * zod, for clients too (`@quantix/core/light`): the CLI finds an entry's newest revision by them.
 */
export const GOLDEN_LABELS = {
  goldenImage: 'quantix.io/golden-image',
  revision: 'quantix.io/revision',
  catalogId: 'quantix.io/catalog-id',
} as const;
