package web

// pages lists the console's pages; each is defined in its own file
// (page_*.go) with its templates in templates/<name>.html.
func (c *Console) pages() []page {
	return []page{
		c.overviewPage(),
		c.devicesPage(),
		c.enrollmentPage(),
		c.modelsPage(),
		c.budgetPage(),
		c.keysetsPage(),
		c.jobsPage(),
		c.apikeysPage(),
		c.auditPage(),
	}
}
